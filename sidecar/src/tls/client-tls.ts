/**
 * The client side of mTLS for upstreams that are peer sidecars: the
 * library's SpiffeTlsClient connector (each connect reads the current
 * identity, the hostname check is replaced by the SPIFFE check, the socket
 * is handed to the HTTP layer only after the peer passed it), plus what the
 * sidecar adds: the upstream's TLS profile, one refusal or handshake event
 * per connection, and the sidecar's error codes (tls/refusals.ts).
 */
import type { TLSSocket } from 'node:tls'
import {
  type IdMatcher,
  isSpiffeError,
  reverifyTlsPeer,
  type SpiffeConnectFailure,
  SpiffeTlsClient,
} from 'workload-api-client'
import { SvidecarError } from '../errors/index.ts'
import type { Identity } from '../identity/identity.ts'
import { publishTlsRejected } from '../observe/events.ts'
import { peerRejected, publishHandshake } from './peer.ts'
import { protocolOptions, type TlsParameters } from './profiles.ts'
import { refusalEvent, refusalOfPeerCheck, refusalOfTlsError, upstreamConnectError } from './refusals.ts'
import { identityTlsSource } from './source.ts'

export interface ClientTlsOptions {
  /** The upstream's name, for events and errors. */
  upstream: string
  authorizer: IdMatcher
  /** Versions and suites (tls/profiles.ts). */
  params: TlsParameters
  connectTimeoutMs: number
  /**
   * Called for every connection accepted, with the time its peer's verified path stops being valid (the first
   * NotAfter along it): a kept-alive connection must not carry requests past it (Upstream renews its pool then).
   */
  onPeerValidUntil?: (untilMs: number) => void
}

export interface ConnectTarget {
  hostname: string
  port: string | number
  servername?: string | null | undefined
}

/** undici's connector callback shape. */
export type ConnectCallback = (...args: [null, TLSSocket] | [Error, null]) => void

export class ClientTls {
  readonly #options: ClientTlsOptions
  readonly #spiffe: SpiffeTlsClient

  constructor(identity: Identity, options: ClientTlsOptions) {
    this.#options = options
    this.#spiffe = new SpiffeTlsClient({
      source: identityTlsSource(identity),
      authorizer: options.authorizer,
      ...protocolOptions(options.params),
      connectTimeoutMs: options.connectTimeoutMs,
      // OpenSSL's refusals keep their own reasons in the refusal table (CERT_EXPIRED, UNKNOWN_AUTHORITY, ...).
      openSslVerify: true,
      onAccepted: (id, socket) => {
        publishHandshake(options.upstream, 'outbound', id, socket)
        const report = options.onPeerValidUntil
        const bundles = identity.current()?.bundleSource
        if (report === undefined || bundles === undefined) return
        try {
          let until = Number.POSITIVE_INFINITY
          for (const cert of reverifyTlsPeer(socket, bundles).verifiedChain) {
            until = Math.min(until, cert.validToDate.getTime())
          }
          report(until)
        } catch {
          // Verified a moment ago; a bundle that changed since renews the pool anyway (forwarder/upstreams.ts).
        }
      },
      onConnectError: (err, info) => this.#failed(err, info),
    })
  }

  /** undici's `connect` option. */
  readonly connect = (target: ConnectTarget, callback: ConnectCallback): void => {
    this.#spiffe.connector(
      {
        hostname: target.hostname,
        port: target.port,
        // The SNI is the upstream's configured host name (the library's default for a target host that is not an
        // IP literal), never a name undici derived from the Host the local app sent (RFC 6066 3).
        servername: undefined,
        ALPNProtocols: ['http/1.1'],
      },
      callback,
    )
  }

  // Every failed connection: one refusal event when the handshake (not reaching the upstream) failed, and the
  // error the request ends with.
  #failed(err: Error & { code?: string }, info: SpiffeConnectFailure): SvidecarError {
    const upstream = this.#options.upstream
    const refused = (e: SvidecarError, refusal: Parameters<typeof refusalEvent>[3]) =>
      publishTlsRejected(refusalEvent(upstream, 'outbound', e.code, refusal))
    if (isSpiffeError(err) && err.code === 'SPIFFE_WLAPI_NO_IDENTITY') {
      const e = new SvidecarError(
        'SVD_IDENTITY_UNAVAILABLE',
        `no valid X.509-SVID to present to ${upstream}`,
        {
          reason: 'NO_LOCAL_SVID',
        },
      )
      refused(e, { reason: 'NO_LOCAL_SVID' })
      return e
    }
    if (info.timedOut) {
      const e = new SvidecarError(
        'SVD_UPSTREAM_CONNECT_TIMEOUT',
        `no TLS connection to upstream ${upstream} within ${this.#options.connectTimeoutMs} ms`,
        { reason: info.tcpConnected ? 'HANDSHAKE_TIMEOUT' : 'CONNECT_TIMEOUT' },
      )
      if (info.tcpConnected) refused(e, { reason: 'HANDSHAKE_TIMEOUT' })
      return e
    }
    if (isSpiffeError(err)) {
      const e = peerRejected(err, 'SVD_UPSTREAM_PEER_REJECTED')
      refused(e, refusalOfPeerCheck(e))
      return e
    }
    const e = upstreamConnectError(err, upstream, info.tcpConnected)
    if (info.tcpConnected) refused(e, refusalOfTlsError(err))
    return e
  }
}
