/**
 * The server side of mTLS for inbound listeners. Credentials follow the
 * identity: every update swaps the server's SecureContext, so new handshakes
 * use the new SVID and roots while established connections keep theirs. A
 * fresh context also brings fresh session-ticket keys and an empty session
 * cache, so no session verified against old bundles can be resumed.
 *
 * Every connection, resumed or not, is checked by SPIFFE rules before the
 * HTTP layer reads a byte of it.
 */
import type { TLSSocket, TlsOptions, Server as TlsServer } from 'node:tls'
import type { IdMatcher, SpiffeId } from 'workload-api-client'
import { SvidecarError } from '../errors/index.ts'
import type { Identity, IdentitySnapshot } from '../identity/identity.ts'
import { publishTlsHandshake, publishTlsRejected, wantsTlsHandshake } from '../observe/events.ts'
import { protocolOptions, secureContextOptions } from './contexts.ts'
import { peerSerial, verifyPeer } from './peer.ts'
import type { TlsParameters } from './profiles.ts'
import { inboundCode, refusalEvent, refusalOfPeerCheck, refusalOfTlsError } from './refusals.ts'

export interface ServerTlsOptions {
  listener: string
  authorizer: IdMatcher
  /** Versions and suites (tls/profiles.ts). */
  params: TlsParameters
  /** A connection that has not finished its handshake by then is closed (Node's own default is 120 s). */
  handshakeTimeoutMs: number
}

const peerIds = new WeakMap<TLSSocket, SpiffeId>()

// `ca: []`, not an absent `ca`: without one Node would trust its bundled public roots.
function serverContextOptions(snapshot: IdentitySnapshot, options: ServerTlsOptions) {
  return { ...secureContextOptions(snapshot, options.params), ca: [] as string[] }
}

/** The verified SPIFFE ID of an inbound connection (set before any request is parsed). */
export function peerIdOf(socket: TLSSocket): SpiffeId | undefined {
  return peerIds.get(socket)
}

export class ServerTls {
  readonly #identity: Identity
  readonly #options: ServerTlsOptions
  readonly #servers = new Set<TlsServer>()
  readonly #unsubscribe: () => void

  constructor(identity: Identity, options: ServerTlsOptions) {
    this.#identity = identity
    this.#options = options
    this.#unsubscribe = identity.onChange((snapshot) => this.#swap(snapshot))
  }

  /** Options for `https.createServer` / `tls.createServer`. */
  serverOptions(): TlsOptions {
    const snapshot = this.#identity.current()
    return {
      ...(snapshot === undefined
        ? protocolOptions(this.#options.params)
        : serverContextOptions(snapshot, this.#options)),
      handshakeTimeout: this.#options.handshakeTimeoutMs,
      requestCert: true,
      // OpenSSL gets no roots, so its verification never succeeds and Node leaves the client's chain readable
      // (peer.ts); every connection is verified in #check before a byte is read, and refused unless it passes.
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    }
  }

  /** Verifies every connection of `server` before its first byte is read. */
  attach(server: TlsServer): void {
    this.#servers.add(server)
    server.on('close', () => this.#servers.delete(server))
    // prepend: ours must run before the HTTP layer's own secureConnection listener starts the parser.
    server.prependListener('secureConnection', (socket: TLSSocket) => this.#check(socket))
    // prepend: https.Server's own listener answers a TLS error as an HTTP client error, and an HTTP answer
    // written to a socket whose handshake never finished waits forever (a timed-out socket stayed in CLOSE-WAIT
    // and held a connection slot). Close it first, whatever the error.
    server.prependListener('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
      socket.destroy()
      const refusal =
        this.#identity.current() === undefined
          ? { reason: 'NO_LOCAL_SVID' as const }
          : refusalOfTlsError(err, socket.authorizationError)
      publishTlsRejected(
        refusalEvent(this.#options.listener, 'inbound', inboundCode(refusal.reason), refusal),
      )
    })
  }

  close(): void {
    this.#unsubscribe()
    this.#servers.clear()
  }

  #check(socket: TLSSocket): void {
    const snapshot = this.#identity.current()
    try {
      if (snapshot === undefined) {
        throw new SvidecarError('SVD_IDENTITY_UNAVAILABLE', 'no valid X.509-SVID', { reason: 'NO_SVID' })
      }
      const id = verifyPeer(socket, snapshot, this.#options.authorizer, 'SVD_PEER_REJECTED')
      peerIds.set(socket, id)
      if (wantsTlsHandshake())
        publishTlsHandshake({
          listener: this.#options.listener,
          direction: 'inbound',
          peerId: id.toString(),
          resumed: socket.isSessionReused(),
          peerSerial: peerSerial(socket),
          protocol: socket.getProtocol() ?? '',
        })
    } catch (err) {
      const e =
        err instanceof SvidecarError
          ? err
          : new SvidecarError('SVD_PEER_REJECTED', 'peer verification failed')
      const refusal = refusalOfPeerCheck(e)
      publishTlsRejected(
        refusalEvent(this.#options.listener, 'inbound', inboundCode(refusal.reason), refusal),
      )
      socket.destroy()
    }
  }

  #swap(snapshot: IdentitySnapshot | undefined): void {
    for (const server of this.#servers) {
      if (snapshot === undefined) {
        // No SVID: a context without a certificate cannot complete a handshake. Fail closed.
        server.setSecureContext(protocolOptions(this.#options.params))
      } else {
        server.setSecureContext(serverContextOptions(snapshot, this.#options))
      }
    }
  }
}
