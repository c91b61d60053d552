/**
 * SPIFFE mTLS for Node clients: `connect()` for node:tls users, an
 * `https.Agent` for `https.request`, and `connector`, the connect function
 * undici's Agent takes (the `workload-api-client/undici` entry point wraps it
 * in a Dispatcher for `fetch`).
 *
 * Each connection reads the source's current credentials, so a rotated SVID
 * is used from the next connection on. The hostname check is replaced by the
 * SPIFFE check, and a socket is handed over only after its peer passed it,
 * so no application byte reaches an unverified server.
 */
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from 'node:https'
import { isIP, type Socket } from 'node:net'
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls'
import { SpiffeError } from '../errors.ts'
import type { IdMatcher } from '../id-matcher.ts'
import { CredentialCache, type TlsProtocolOptions, type X509TlsSource } from './credentials.ts'
import { peerLeafDer, rememberPeerId, verifyTlsPeer } from './peer.ts'

export interface SpiffeTlsClientOptions extends TlsProtocolOptions {
  /** The SVID to present and the bundles to verify servers with: an X509Source. */
  source: X509TlsSource
  /** Which verified server IDs may be connected to: a matcher such as matchId('spiffe://example.org/api'). */
  authorizer: IdMatcher
  /** A connection not up and verified by then fails with an ETIMEDOUT error; default 10 s. */
  connectTimeoutMs?: number
}

/** Where to connect: node:tls's host/port, or undici's hostname/port. */
export interface SpiffeConnectTarget {
  host?: string | undefined
  hostname?: string | undefined
  port: string | number
  /** SNI; by default the host name when it is not an IP address. */
  servername?: string | null | undefined
  ALPNProtocols?: string[] | undefined
}

/** undici's connector callback. */
export type SpiffeConnectCallback = (...args: [null, TLSSocket] | [Error, null]) => void

export class SpiffeTlsClient {
  readonly #options: SpiffeTlsClientOptions
  readonly #credentials: CredentialCache
  // Session tickets per target, valid only within the credential generation that made them.
  readonly #sessions = new Map<string, { generation: number; session: Buffer; leaf: Buffer }>()

  constructor(options: SpiffeTlsClientOptions) {
    this.#options = options
    this.#credentials = new CredentialCache(options.source, options)
  }

  /** A verified TLS connection: resolves after the server's SVID passed, rejects with a SpiffeError otherwise. */
  connect(target: SpiffeConnectTarget): Promise<TLSSocket> {
    return new Promise((resolve, reject) => {
      this.connector(target, (...args) => (args[0] === null ? resolve(args[1]) : reject(args[0])))
    })
  }

  /** An https.Agent whose connections are SPIFFE mTLS, for `https.request({ agent })`. */
  httpsAgent(options: HttpsAgentOptions = {}): HttpsAgent {
    const connector = this.connector
    const agent = new HttpsAgent({ ...options, maxCachedSessions: 0 })
    // http.Agent accepts a createConnection that answers through its callback.
    agent.createConnection = ((
      opts: ConnectionOptions,
      callback: (err: Error | null, socket?: Socket) => void,
    ) => {
      connector(
        {
          host: opts.host,
          port: opts.port ?? 443,
          servername: opts.servername,
          ALPNProtocols: ['http/1.1'],
        },
        (...args) => (args[0] === null ? callback(null, args[1]) : callback(args[0])),
      )
      return undefined
    }) as unknown as HttpsAgent['createConnection']
    return agent
  }

  /** undici's `connect` option: `new Agent({ connect: client.connector })`. */
  readonly connector = (target: SpiffeConnectTarget, callback: SpiffeConnectCallback): void => {
    const credentials = this.#credentials.current()
    if (credentials === undefined) {
      callback(
        new SpiffeError('SPIFFE_WLAPI_NO_IDENTITY', 'no usable X.509-SVID to present: not connecting', {
          reason: 'NO_SVID',
        }),
        null,
      )
      return
    }
    const host = target.hostname ?? target.host ?? 'localhost'
    const port = Number(target.port)
    const key = `${host}:${port}`
    const cached = this.#sessions.get(key)
    const resumable =
      cached !== undefined && cached.generation === credentials.generation ? cached : undefined
    const servername = target.servername || (isIP(host) === 0 ? host : undefined)
    const socket = tlsConnect({
      host,
      port,
      secureContext: this.#credentials.clientContext(credentials),
      ...(servername === undefined ? {} : { servername }),
      ALPNProtocols: target.ALPNProtocols ?? ['http/1.1'],
      // Host names mean nothing here, and OpenSSL's verdict against the union of all roots is not the SPIFFE
      // one: the server's chain and ID are checked on secureConnect, and refused with the library's codes.
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      ...(resumable === undefined ? {} : { session: resumable.session }),
    })
    // Small request/response exchanges must not wait on Nagle's algorithm and delayed ACKs.
    socket.setNoDelay(true)
    let settled = false
    const finish = (err: Error | null) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.off('error', finish)
      if (err === null) callback(null, socket)
      else {
        socket.destroy()
        callback(err, null)
      }
    }
    const timeoutMs = this.#options.connectTimeoutMs ?? 10_000
    const timer = setTimeout(() => {
      const err = new Error(`no verified TLS connection to ${key} within ${timeoutMs} ms`) as Error & {
        code: string
      }
      err.code = 'ETIMEDOUT'
      finish(err)
    }, timeoutMs)
    socket.on('error', finish)
    let leaf: Buffer | undefined
    socket.on('session', (session: Buffer) => {
      // Node shows no peer certificate on a resumed client session: keep the one this session was verified with.
      if (leaf !== undefined) this.#sessions.set(key, { generation: credentials.generation, session, leaf })
    })
    socket.once('secureConnect', () => {
      try {
        // A rotation during the handshake does not matter: the peer is judged by the bundles it was made with.
        const id = verifyTlsPeer(socket, credentials.bundles, this.#options.authorizer, {
          purpose: 'server',
          resumedLeaf: resumable?.leaf,
        })
        leaf = peerLeafDer(socket) ?? resumable?.leaf
        rememberPeerId(socket, id)
        finish(null)
      } catch (err) {
        this.#sessions.delete(key)
        finish(err as Error)
      }
    })
  }
}

/** `new SpiffeTlsClient(options)`: see SpiffeTlsClient. */
export function spiffeTlsClient(options: SpiffeTlsClientOptions): SpiffeTlsClient {
  return new SpiffeTlsClient(options)
}
