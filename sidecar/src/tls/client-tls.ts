/**
 * The client side of mTLS for upstreams that are peer sidecars. A connector
 * in undici's shape: each connect reads the current identity, so a rotated
 * SVID is used from the next connection on. The hostname check is replaced
 * by the SPIFFE check, and the socket is handed to the HTTP layer only after
 * the peer passed it, so no request byte reaches an unverified server.
 */

import { isIP } from 'node:net'
import { type TLSSocket, connect as tlsConnect } from 'node:tls'
import type { IdMatcher } from 'workload-api-client'
import { SvidecarError } from '../errors/index.ts'
import type { Identity } from '../identity/identity.ts'
import { publishTlsHandshake, publishTlsRejected, wantsTlsHandshake } from '../observe/events.ts'
import { ContextCache } from './contexts.ts'
import { peerLeafDer, peerSerial, verifyPeer } from './peer.ts'
import type { TlsParameters } from './profiles.ts'
import {
  refusalEvent,
  refusalOfPeerCheck,
  refusalOfTlsError,
  type TlsRefusal,
  upstreamConnectError,
} from './refusals.ts'

export interface ClientTlsOptions {
  /** The upstream's name, for events and errors. */
  upstream: string
  authorizer: IdMatcher
  /** Versions and suites (tls/profiles.ts). */
  params: TlsParameters
  connectTimeoutMs: number
}

export interface ConnectTarget {
  hostname: string
  port: string | number
  servername?: string | null | undefined
}

/** undici's connector callback shape. */
export type ConnectCallback = (...args: [null, TLSSocket] | [Error, null]) => void

export class ClientTls {
  readonly #identity: Identity
  readonly #options: ClientTlsOptions
  readonly #contexts: ContextCache
  // Session tickets per target, valid only within the identity generation that made them.
  readonly #sessions = new Map<string, { generation: number; session: Buffer; leaf?: Buffer }>()

  constructor(identity: Identity, options: ClientTlsOptions) {
    this.#identity = identity
    this.#options = options
    this.#contexts = new ContextCache(options.params)
  }

  /** undici's `connect` option. */
  readonly connect = (target: ConnectTarget, callback: ConnectCallback): void => {
    const snapshot = this.#identity.current()
    const upstream = this.#options.upstream
    const refused = (code: SvidecarError['code'], refusal: TlsRefusal) =>
      publishTlsRejected(refusalEvent(upstream, 'outbound', code, refusal))
    if (snapshot === undefined) {
      refused('SVD_IDENTITY_UNAVAILABLE', { reason: 'NO_LOCAL_SVID' })
      callback(
        new SvidecarError('SVD_IDENTITY_UNAVAILABLE', `no valid X.509-SVID to present to ${upstream}`, {
          reason: 'NO_LOCAL_SVID',
        }),
        null,
      )
      return
    }
    const port = Number(target.port)
    const key = `${target.hostname}:${port}`
    const cached = this.#sessions.get(key)
    const servername = target.servername || (isIP(target.hostname) === 0 ? target.hostname : undefined)
    const socket = tlsConnect({
      host: target.hostname,
      port,
      secureContext: this.#contexts.get(snapshot),
      ...(servername === undefined ? {} : { servername }),
      ALPNProtocols: ['http/1.1'],
      // Hostnames mean nothing here; the peer's SPIFFE ID is checked on secureConnect instead.
      checkServerIdentity: () => undefined,
      ...(cached !== undefined && cached.generation === snapshot.generation
        ? { session: cached.session }
        : {}),
    })
    // Small request/response exchanges must not wait on Nagle's algorithm and delayed ACKs (a 40 ms tail).
    socket.setNoDelay(true)
    // Until TCP is up a failure is about reaching the upstream; after, it is the handshake's.
    let connected = false
    socket.once('connect', () => {
      connected = true
    })
    let settled = false
    const finish = (err: Error | null) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.off('error', onError)
      if (err === null) callback(null, socket)
      else {
        socket.destroy()
        callback(err, null)
      }
    }
    const timer = setTimeout(() => {
      if (settled) return
      if (connected) refused('SVD_UPSTREAM_CONNECT_TIMEOUT', { reason: 'HANDSHAKE_TIMEOUT' })
      finish(
        new SvidecarError(
          'SVD_UPSTREAM_CONNECT_TIMEOUT',
          `no TLS connection to upstream ${upstream} within ${this.#options.connectTimeoutMs} ms`,
          { reason: connected ? 'HANDSHAKE_TIMEOUT' : 'CONNECT_TIMEOUT' },
        ),
      )
    }, this.#options.connectTimeoutMs)
    const onError = (err: Error & { code?: string }) => {
      if (settled) return
      const e = upstreamConnectError(err, upstream, connected)
      if (connected) refused(e.code, refusalOfTlsError(err))
      finish(e)
    }
    socket.on('error', onError)
    let leaf: Buffer | undefined
    socket.on('session', (session: Buffer) => {
      // Node shows no peer certificate on a resumed client session: keep the one this session was verified with.
      if (leaf !== undefined) this.#sessions.set(key, { generation: snapshot.generation, session, leaf })
    })
    socket.once('secureConnect', () => {
      // The identity may have rotated during the handshake; the peer is judged by the bundles we connected with.
      try {
        const resumed =
          cached !== undefined && cached.generation === snapshot.generation ? cached.leaf : undefined
        const id = verifyPeer(
          socket,
          snapshot,
          this.#options.authorizer,
          'SVD_UPSTREAM_PEER_REJECTED',
          resumed,
        )
        leaf = peerLeafDer(socket) ?? resumed
        if (wantsTlsHandshake())
          publishTlsHandshake({
            listener: this.#options.upstream,
            direction: 'outbound',
            peerId: id.toString(),
            resumed: socket.isSessionReused(),
            peerSerial: peerSerial(socket),
            protocol: socket.getProtocol() ?? '',
          })
        finish(null)
      } catch (err) {
        const e =
          err instanceof SvidecarError
            ? err
            : new SvidecarError('SVD_UPSTREAM_PEER_REJECTED', 'peer verification failed')
        this.#sessions.delete(key)
        refused(e.code, refusalOfPeerCheck(e))
        finish(e)
      }
    })
  }
}
