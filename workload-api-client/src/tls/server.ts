/**
 * SPIFFE mTLS for any node:tls server (`https`, `tls`, `http2` secure
 * servers): the server presents the source's current SVID, asks every client
 * for one, and verifies it per the X509-SVID spec before the application
 * reads a byte of the connection.
 *
 * Credentials follow the source: every update swaps the server's
 * SecureContext (setSecureContext), so new handshakes use the new SVID and
 * roots while established connections keep theirs; a fresh context also
 * brings fresh session-ticket keys, so no session verified against old
 * bundles is resumed. With no usable SVID the server holds a context without
 * a certificate, which completes no handshake (fail closed).
 *
 * OpenSSL gets no roots and does not reject (nodejs/node#65579, peer.ts):
 * the verification is ours, on the `secureConnection` event, and a server
 * that was never attached holds no certificate and so accepts nobody.
 */
import type { TLSSocket, TlsOptions, Server as TlsServer } from 'node:tls'
import { SpiffeError } from '../errors.ts'
import type { IdMatcher } from '../id-matcher.ts'
import type { SpiffeId } from '../spiffe-id.ts'
import {
  CredentialCache,
  TLS_SECURE_OPTIONS,
  type TlsProtocolOptions,
  type X509TlsSource,
} from './credentials.ts'
import { rememberPeerId, reverifyTlsPeer, verifyPeerSocket } from './peer.ts'

export interface SpiffeTlsServerOptions extends TlsProtocolOptions {
  /** The SVID to present and the bundles to verify clients with: an X509Source. */
  source: X509TlsSource
  /** Which verified client IDs may connect: a matcher such as matchMemberOf('example.org'). */
  authorizer: IdMatcher
  /** Called for every client refused, with verifyTlsPeer's error (or SPIFFE_WLAPI_NO_IDENTITY). */
  onRefused?: (err: SpiffeError, socket: TLSSocket) => void
  /** Called for every client accepted, before the application sees the connection. */
  onAccepted?: (id: SpiffeId, socket: TLSSocket) => void
  /**
   * Default true: on every source update, connections already accepted are
   * verified again against the new bundles (reverifyTlsPeer), and one whose
   * peer no longer verifies (its trust domain left the bundles, its root was
   * retired) is destroyed and reported to onRefused. A connection outlives
   * its handshake; the trust that admitted it may not.
   */
  reverifyOnUpdate?: boolean
}

export class SpiffeTlsServer {
  readonly #options: SpiffeTlsServerOptions
  readonly #credentials: CredentialCache
  readonly #servers = new Set<TlsServer>()
  readonly #accepted = new Set<TLSSocket>()
  #unsubscribe: (() => void) | undefined

  constructor(options: SpiffeTlsServerOptions) {
    this.#options = options
    this.#credentials = new CredentialCache(options.source, options)
  }

  /**
   * Options for `https.createServer`, `tls.createServer` or
   * `http2.createSecureServer`; spread your own (ALPN, timeouts) beside them.
   * They hold no certificate: attach() installs it.
   */
  get options(): TlsOptions {
    return {
      ...this.#credentials.protocol,
      secureOptions: TLS_SECURE_OPTIONS,
      requestCert: true,
      rejectUnauthorized: false,
      ca: [],
    }
  }

  /** Installs the current SVID on `server`, keeps it current, and verifies every client. Returns `server`. */
  attach<S extends TlsServer>(server: S): S {
    this.#servers.add(server)
    this.#unsubscribe ??= this.#options.source.onUpdate(() => this.#swap())
    server.setSecureContext(this.#credentials.serverContextOptions(this.#credentials.current()))
    server.on('close', () => this.#servers.delete(server))
    // prepend: ours must run before the HTTP (or HTTP/2) layer's own listener starts reading the socket.
    server.prependListener('secureConnection', (socket: TLSSocket) => this.#check(socket))
    // prepend: https.Server answers a TLS error with an HTTP 400 written to a socket whose handshake never
    // finished, which then lingers; close it first.
    server.prependListener('tlsClientError', (_err: Error, socket: TLSSocket) => socket.destroy())
    return server
  }

  /** Stops following the source; attached servers keep their last context. */
  close(): void {
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
    this.#servers.clear()
  }

  #check(socket: TLSSocket): void {
    const credentials = this.#credentials.current()
    try {
      if (credentials === undefined) {
        throw new SpiffeError('SPIFFE_WLAPI_NO_IDENTITY', 'no usable X.509-SVID: refusing every client', {
          reason: 'NO_SVID',
        })
      }
      const { id } = verifyPeerSocket(socket, credentials.bundles, this.#options.authorizer, {
        purpose: 'client',
      })
      rememberPeerId(socket, id)
      if (this.#options.reverifyOnUpdate !== false) {
        this.#accepted.add(socket)
        socket.once('close', () => this.#accepted.delete(socket))
      }
      this.#options.onAccepted?.(id, socket)
    } catch (err) {
      this.#refuse(socket, err)
    }
  }

  #refuse(socket: TLSSocket, err: unknown): void {
    socket.destroy()
    this.#accepted.delete(socket)
    const e =
      err instanceof SpiffeError
        ? err
        : new SpiffeError('SPIFFE_CHAIN_UNVERIFIED', 'the client certificate could not be verified', {
            reason: 'UNVERIFIABLE',
            cause: err,
          })
    this.#options.onRefused?.(e, socket)
  }

  #swap(): void {
    const credentials = this.#credentials.current()
    const options = this.#credentials.serverContextOptions(credentials)
    for (const server of this.#servers) server.setSecureContext(options)
    // Without an SVID nothing new is accepted; established peers are judged again once bundles arrive.
    if (credentials === undefined) return
    for (const socket of [...this.#accepted]) {
      try {
        reverifyTlsPeer(socket, credentials.bundles)
      } catch (err) {
        this.#refuse(socket, err)
      }
    }
  }
}

/** `new SpiffeTlsServer(options)`: see SpiffeTlsServer. */
export function spiffeTlsServer(options: SpiffeTlsServerOptions): SpiffeTlsServer {
  return new SpiffeTlsServer(options)
}
