/**
 * The server side of mTLS for inbound listeners: the library's
 * SpiffeTlsServer (credentials that follow the identity, a fresh
 * SecureContext and session-ticket keys on every update, every connection
 * checked by SPIFFE rules before the HTTP layer reads a byte of it), plus
 * what the sidecar adds: the listener's TLS profile, ALPN and handshake
 * timeout, and one refusal or handshake event per connection with the
 * sidecar's codes and reasons (tls/refusals.ts).
 */
import type { TLSSocket, TlsOptions, Server as TlsServer } from 'node:tls'
import { type IdMatcher, type SpiffeError, SpiffeTlsServer } from 'workload-api-client'
import { SvidecarError } from '../errors/index.ts'
import type { Identity } from '../identity/identity.ts'
import { publishTlsRejected } from '../observe/events.ts'
import { peerRejected, publishHandshake } from './peer.ts'
import { protocolOptions, type TlsParameters } from './profiles.ts'
import { inboundCode, refusalEvent, refusalOfPeerCheck, refusalOfTlsError } from './refusals.ts'
import { identityTlsSource } from './source.ts'

export { peerIdOf } from 'workload-api-client'

export interface ServerTlsOptions {
  listener: string
  authorizer: IdMatcher
  /** Versions and suites (tls/profiles.ts). */
  params: TlsParameters
  /** A connection that has not finished its handshake by then is closed (Node's own default is 120 s). */
  handshakeTimeoutMs: number
}

export class ServerTls {
  readonly #identity: Identity
  readonly #options: ServerTlsOptions
  readonly #spiffe: SpiffeTlsServer

  constructor(identity: Identity, options: ServerTlsOptions) {
    this.#identity = identity
    this.#options = options
    this.#spiffe = new SpiffeTlsServer({
      source: identityTlsSource(identity),
      authorizer: options.authorizer,
      ...protocolOptions(options.params),
      onAccepted: (id, socket) => publishHandshake(options.listener, 'inbound', id, socket),
      onRefused: (err) => this.#refused(err),
    })
  }

  /** Options for `https.createServer` / `tls.createServer`; attach() installs the certificate. */
  serverOptions(): TlsOptions {
    return {
      ...this.#spiffe.options,
      handshakeTimeout: this.#options.handshakeTimeoutMs,
      ALPNProtocols: ['http/1.1'],
    }
  }

  /** Verifies every connection of `server` before its first byte is read. */
  attach(server: TlsServer): void {
    this.#spiffe.attach(server)
    // The library closes a socket whose handshake failed (https.Server would answer it with an HTTP 400 that
    // waits forever); this counts it, once, with the reason OpenSSL gave.
    server.prependListener('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
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
    this.#spiffe.close()
  }

  #refused(err: SpiffeError): void {
    const e =
      err.code === 'SPIFFE_WLAPI_NO_IDENTITY'
        ? new SvidecarError('SVD_IDENTITY_UNAVAILABLE', 'no valid X.509-SVID', { reason: 'NO_SVID' })
        : peerRejected(err, 'SVD_PEER_REJECTED')
    const refusal = refusalOfPeerCheck(e)
    publishTlsRejected(refusalEvent(this.#options.listener, 'inbound', inboundCode(refusal.reason), refusal))
  }
}
