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
import type { SecureVersion, TLSSocket, TlsOptions, Server as TlsServer } from 'node:tls'
import type { IdMatcher, SpiffeId } from 'workload-api-client'
import { SvidecarError } from '../errors/index.ts'
import type { Identity, IdentitySnapshot } from '../identity/identity.ts'
import { publishTlsHandshake, publishTlsRejected } from '../observe/events.ts'
import { secureContextOptions } from './contexts.ts'
import { peerSerial, verifyPeer } from './peer.ts'

export interface ServerTlsOptions {
  listener: string
  authorizer: IdMatcher
  minVersion: SecureVersion
}

const peerIds = new WeakMap<TLSSocket, SpiffeId>()

// `ca: []`, not an absent `ca`: without one Node would trust its bundled public roots.
function serverContextOptions(snapshot: IdentitySnapshot, options: ServerTlsOptions) {
  return { ...secureContextOptions(snapshot, options), ca: [] as string[] }
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
      ...(snapshot === undefined ? {} : serverContextOptions(snapshot, this.#options)),
      minVersion: this.#options.minVersion,
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
    server.on('tlsClientError', (err: Error & { code?: string }) => {
      publishTlsRejected({
        listener: this.#options.listener,
        direction: 'inbound',
        code: 'SVD_PEER_REJECTED',
        reason: err.code ?? 'TLS_HANDSHAKE_FAILED',
      })
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
      publishTlsRejected({
        listener: this.#options.listener,
        direction: 'inbound',
        code: e.code,
        ...(e.reason === undefined ? {} : { reason: e.reason }),
      })
      socket.destroy()
    }
  }

  #swap(snapshot: IdentitySnapshot | undefined): void {
    for (const server of this.#servers) {
      if (snapshot === undefined) {
        // No SVID: a context without a certificate cannot complete a handshake. Fail closed.
        server.setSecureContext({ minVersion: this.#options.minVersion })
      } else {
        server.setSecureContext(serverContextOptions(snapshot, this.#options))
      }
    }
  }
}
