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
import { type ConnectionOptions, type PeerCertificate, type TLSSocket, connect as tlsConnect } from 'node:tls'
import { SpiffeError } from '../errors.ts'
import type { IdMatcher } from '../id-matcher.ts'
import type { SpiffeId } from '../spiffe-id.ts'
import { ParsedCert } from '../x509-cert.ts'
import { CredentialCache, type TlsProtocolOptions, type X509TlsSource } from './credentials.ts'
import { rememberPeerId, verifyPeerSocket } from './peer.ts'

// A resumed session shows the server certificate of the handshake that made it, however old: a server that keeps
// its ticket keys across a certificate rotation (Go's crypto/tls does) resumes it after that certificate expired,
// which the SPIFFE check then refuses. A session is offered only while its certificate has this long left, so a
// connection made from it is not about to carry requests past the certificate.
const RESUME_MIN_VALIDITY_MS = 5000

function leafOutlives(leaf: Buffer, atMs: number): boolean {
  try {
    return ParsedCert.of(leaf, 'SPIFFE_SVID_INVALID', 'resumed leaf').notAfterMs > atMs
  } catch {
    return false
  }
}

export interface SpiffeTlsClientOptions extends TlsProtocolOptions {
  /** The SVID to present and the bundles to verify servers with: an X509Source. */
  source: X509TlsSource
  /** Which verified server IDs may be connected to: a matcher such as matchId('spiffe://example.org/api'). */
  authorizer: IdMatcher
  /** A connection not up and verified by then fails with an ETIMEDOUT error; default 10 s. */
  connectTimeoutMs?: number
  /**
   * Let OpenSSL also verify the server's chain, against the union of every
   * trust domain's roots, before the SPIFFE check (default false). A chain
   * it refuses fails with node:tls's own error (`err.code` such as
   * CERT_HAS_EXPIRED or UNABLE_TO_VERIFY_LEAF_SIGNATURE), for callers whose
   * logs or metrics already speak OpenSSL's codes; a chain it accepts is
   * still checked by the SPIFFE rules, which decide. Off, every refusal is a
   * SpiffeError with verifyX509Svid's codes and reasons.
   */
  openSslVerify?: boolean
  /**
   * Called once for every connection attempt that fails, before the caller
   * gets the error: for logs and metrics, and to give the caller an error of
   * one's own instead (return it; undefined keeps `err`). `err` is a
   * SpiffeError when no SVID was held or the server was refused, the
   * ETIMEDOUT error of connectTimeoutMs, or the socket's own error.
   */
  onConnectError?: (err: Error, info: SpiffeConnectFailure) => Error | undefined
  /** Called for every server accepted, before the connection is handed over. */
  onAccepted?: (id: SpiffeId, socket: TLSSocket) => void
}

/** How far a failed connection attempt got, for SpiffeTlsClientOptions.onConnectError. */
export interface SpiffeConnectFailure {
  /** The host connected to (the target's hostname or host). */
  host: string
  /** The port connected to. */
  port: number
  /** TCP was up: the failure is the TLS handshake's or the verification's, not reaching the server. */
  tcpConnected: boolean
  /** connectTimeoutMs ran out. */
  timedOut: boolean
}

/** Where to connect: node:tls's host/port, or undici's hostname/port. */
export interface SpiffeConnectTarget {
  host?: string | undefined
  hostname?: string | undefined
  port: string | number
  /** SNI; by default the host name. An IP address is never sent (RFC 6066 3). */
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
    const host = target.hostname ?? target.host ?? 'localhost'
    const port = Number(target.port)
    let tcpConnected = false
    const fail = (err: Error, timedOut = false) => {
      const replaced = this.#options.onConnectError?.(err, { host, port, tcpConnected, timedOut })
      callback(replaced ?? err, null)
    }
    const credentials = this.#credentials.current()
    if (credentials === undefined) {
      fail(
        new SpiffeError('SPIFFE_WLAPI_NO_IDENTITY', 'no usable X.509-SVID to present: not connecting', {
          reason: 'NO_SVID',
        }),
      )
      return
    }
    const key = `${host}:${port}`
    const cached = this.#sessions.get(key)
    const resumable =
      cached !== undefined &&
      cached.generation === credentials.generation &&
      leafOutlives(cached.leaf, Date.now() + RESUME_MIN_VALIDITY_MS)
        ? cached
        : undefined
    // RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted in HostName".
    const named = target.servername ? target.servername : host
    const servername = isIP(named) === 0 ? named : undefined
    // Node builds the server's detailed chain for checkServerIdentity on every full handshake OpenSSL verified;
    // the SPIFFE check reads that one instead of building it again (tens of µs a certificate).
    let presented: PeerCertificate | undefined
    const socket = tlsConnect({
      host,
      port,
      secureContext: this.#credentials.clientContext(credentials),
      ...(servername === undefined ? {} : { servername }),
      ALPNProtocols: target.ALPNProtocols ?? ['http/1.1'],
      // Host names mean nothing here, and OpenSSL's verdict against the union of all roots is not the SPIFFE
      // one: the server's chain and ID are checked on secureConnect, and refused with the library's codes.
      rejectUnauthorized: this.#options.openSslVerify === true,
      checkServerIdentity: (_host, cert) => {
        presented = cert
        return undefined
      },
      ...(resumable === undefined ? {} : { session: resumable.session }),
    })
    // Small request/response exchanges must not wait on Nagle's algorithm and delayed ACKs.
    socket.setNoDelay(true)
    socket.once('connect', () => {
      tcpConnected = true
    })
    let settled = false
    const finish = (err: Error | null, timedOut = false) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.off('error', finish)
      if (err === null) callback(null, socket)
      else {
        socket.destroy()
        fail(err, timedOut)
      }
    }
    const timeoutMs = this.#options.connectTimeoutMs ?? 10_000
    const timer = setTimeout(() => {
      const err = new Error(`no verified TLS connection to ${key} within ${timeoutMs} ms`) as Error & {
        code: string
      }
      err.code = 'ETIMEDOUT'
      finish(err, true)
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
        const verified = verifyPeerSocket(socket, credentials.bundles, this.#options.authorizer, {
          purpose: 'server',
          resumedLeaf: resumable?.leaf,
          presented,
        })
        presented = undefined
        leaf = verified.leaf
        rememberPeerId(socket, verified.id)
        this.#options.onAccepted?.(verified.id, socket)
        finish(null)
      } catch (err) {
        this.#sessions.delete(key)
        finish(
          err instanceof SpiffeError
            ? err
            : new SpiffeError('SPIFFE_CHAIN_UNVERIFIED', 'the server certificate could not be verified', {
                reason: 'UNVERIFIABLE',
                cause: err,
              }),
        )
      }
    })
  }
}

/** `new SpiffeTlsClient(options)`: see SpiffeTlsClient. */
export function spiffeTlsClient(options: SpiffeTlsClientOptions): SpiffeTlsClient {
  return new SpiffeTlsClient(options)
}
