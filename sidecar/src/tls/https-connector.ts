/**
 * The connector for upstreams reached over plain HTTPS (external APIs):
 * undici's own TLS connector with the profile's versions and suites and the
 * upstream's CA, plus what undici's lacks: a handshake that OpenSSL refuses
 * (expired or unknown-CA upstream, no common version or suite) is logged and
 * counted like every other refused handshake, and with no valid SVID of its
 * own the sidecar opens no connection at all (fail closed; README "no valid
 * SVID").
 */
import { constants } from 'node:crypto'
import { buildConnector } from 'undici'
import { SvidecarError } from '../errors/index.ts'
import type { Identity } from '../identity/identity.ts'
import { publishTlsRejected } from '../observe/events.ts'
import { protocolOptions, type TlsParameters } from './profiles.ts'
import { isTlsErrorCode, refusalEvent, refusalOfTlsError, upstreamConnectError } from './refusals.ts'

export interface HttpsConnectorOptions {
  upstream: string
  params: TlsParameters
  /** PEM roots; the system's when absent. */
  ca?: string
  connectTimeoutMs: number
}

export function httpsConnector(identity: Identity, options: HttpsConnectorOptions): buildConnector.connector {
  const connect = buildConnector({
    ...protocolOptions(options.params),
    // As on every other leg (workload-api-client's TLS_SECURE_OPTIONS): an upstream's TLS 1.2 renegotiation is
    // a new handshake that the checks of the first one do not cover.
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    timeout: options.connectTimeoutMs,
  })
  return (target, callback) => {
    if (identity.current() === undefined) {
      publishTlsRejected(
        refusalEvent(options.upstream, 'outbound', 'SVD_IDENTITY_UNAVAILABLE', { reason: 'NO_LOCAL_SVID' }),
      )
      callback(
        new SvidecarError(
          'SVD_IDENTITY_UNAVAILABLE',
          `no valid X.509-SVID: no connection to ${options.upstream} while failing closed`,
          { reason: 'NO_LOCAL_SVID' },
        ),
        null,
      )
      return
    }
    connect(target, (...args) => {
      const err = args[0] as (Error & { code?: string }) | null
      if (err === null) {
        callback(...args)
        return
      }
      if (isTlsErrorCode(err.code)) {
        publishTlsRejected(
          refusalEvent(options.upstream, 'outbound', 'SVD_UPSTREAM_TLS_FAILED', refusalOfTlsError(err)),
        )
      }
      callback(upstreamConnectError(err, options.upstream), null)
    })
  }
}
