/**
 * Why a TLS handshake was refused, as one stable reason from a closed set:
 * a metric label and a log field, never a SPIFFE ID or a peer's words. This
 * is the one place that reads OpenSSL's error codes (`err.code` of a failed
 * handshake, the server side's `authorizationError`, the alert a peer sent)
 * and the SPIFFE verifier's reasons; everything else works with the reason.
 */
import { SvidecarError, type SvidecarErrorCode } from '../errors/index.ts'
import { upstreamError } from '../errors/upstream-errors.ts'

export const TLS_REFUSALS = {
  CERT_EXPIRED: 'the peer certificate has expired',
  CERT_NOT_YET_VALID: 'the peer certificate is not valid yet',
  UNKNOWN_AUTHORITY: 'the peer certificate was not issued by an authority trusted for it',
  BAD_CHAIN: 'the peer certificate chain is invalid',
  HOSTNAME_MISMATCH: 'the upstream certificate does not name the host',
  NO_CLIENT_CERTIFICATE: 'the client presented no certificate',
  SPIFFE_RULE: 'the peer certificate is not a conformant X.509-SVID',
  UNAUTHORIZED: 'the peer SPIFFE ID is not allowed here',
  NO_LOCAL_SVID: 'this sidecar holds no valid X.509-SVID, so it refuses every handshake (failing closed)',
  HANDSHAKE_TIMEOUT: 'the handshake did not finish in time',
  PROTOCOL_VERSION: 'no TLS version in common (TLS 1.0 and 1.1 are refused; the profile may require 1.3)',
  NO_SHARED_CIPHER: 'no cipher suite in common (only ECDHE with AEAD suites are offered)',
  NOT_TLS: 'the peer does not speak TLS',
  NO_APPLICATION_PROTOCOL: 'no application protocol in common (ALPN: the sidecar speaks http/1.1 only)',
  PEER_REFUSED: 'the peer refused the handshake with an alert',
  PEER_CLOSED: 'the peer closed the connection during the handshake',
  HANDSHAKE_FAILED: 'the handshake failed',
} as const

export type TlsRefusalReason = keyof typeof TLS_REFUSALS

export interface TlsRefusal {
  reason: TlsRefusalReason
  /** The finer cause (an OpenSSL code, a SPIFFE rule): for the log line, never for a metric label. */
  detail?: string
}

// OpenSSL's X509_V_ERR_* names as Node reports them (err.code on a client, authorizationError on a server).
const VERIFY_CODES: Record<string, TlsRefusalReason> = {
  CERT_HAS_EXPIRED: 'CERT_EXPIRED',
  ERROR_IN_CERT_NOT_AFTER_FIELD: 'CERT_EXPIRED',
  CERT_NOT_YET_VALID: 'CERT_NOT_YET_VALID',
  ERROR_IN_CERT_NOT_BEFORE_FIELD: 'CERT_NOT_YET_VALID',
  UNABLE_TO_GET_ISSUER_CERT: 'UNKNOWN_AUTHORITY',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'UNKNOWN_AUTHORITY',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'UNKNOWN_AUTHORITY',
  SELF_SIGNED_CERT_IN_CHAIN: 'UNKNOWN_AUTHORITY',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'UNKNOWN_AUTHORITY',
  CERT_UNTRUSTED: 'UNKNOWN_AUTHORITY',
  CERT_SIGNATURE_FAILURE: 'BAD_CHAIN',
  UNABLE_TO_DECRYPT_CERT_SIGNATURE: 'BAD_CHAIN',
  UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: 'BAD_CHAIN',
  CERT_CHAIN_TOO_LONG: 'BAD_CHAIN',
  PATH_LENGTH_EXCEEDED: 'BAD_CHAIN',
  INVALID_CA: 'BAD_CHAIN',
  INVALID_PURPOSE: 'BAD_CHAIN',
  CERT_REJECTED: 'BAD_CHAIN',
  CERT_REVOKED: 'BAD_CHAIN',
  ERR_TLS_CERT_ALTNAME_INVALID: 'HOSTNAME_MISMATCH',
  HOSTNAME_MISMATCH: 'HOSTNAME_MISMATCH',
}

// Handshake failures OpenSSL (or Node around it) reports as ERR_SSL_* / ERR_TLS_* codes.
const HANDSHAKE_CODES: Record<string, TlsRefusalReason> = {
  ERR_TLS_HANDSHAKE_TIMEOUT: 'HANDSHAKE_TIMEOUT',
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: 'NO_CLIENT_CERTIFICATE',
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'PROTOCOL_VERSION',
  ERR_SSL_NO_PROTOCOLS_AVAILABLE: 'PROTOCOL_VERSION',
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: 'PROTOCOL_VERSION',
  ERR_SSL_UNSUPPORTED_SSL_VERSION: 'PROTOCOL_VERSION',
  ERR_SSL_NO_SHARED_CIPHER: 'NO_SHARED_CIPHER',
  ERR_SSL_NO_CIPHERS_AVAILABLE: 'NO_SHARED_CIPHER',
  ERR_SSL_NO_SUITABLE_KEY_SHARE: 'NO_SHARED_CIPHER',
  ERR_SSL_NO_SHARED_GROUPS: 'NO_SHARED_CIPHER',
  ERR_SSL_WRONG_CIPHER_RETURNED: 'NO_SHARED_CIPHER',
  ERR_SSL_TLSV1_ALERT_INSUFFICIENT_SECURITY: 'NO_SHARED_CIPHER',
  ERR_SSL_HTTP_REQUEST: 'NOT_TLS',
  ERR_SSL_HTTPS_PROXY_REQUEST: 'NOT_TLS',
  ERR_SSL_WRONG_VERSION_NUMBER: 'NOT_TLS',
  ERR_SSL_PACKET_LENGTH_TOO_LONG: 'NOT_TLS',
  ERR_SSL_RECORD_LENGTH_MISMATCH: 'NOT_TLS',
  // RFC 7301 3.2: we refused the client's ALPN list (HTTP/2 only, as gRPC sends), or the upstream refused ours.
  ERR_SSL_NO_APPLICATION_PROTOCOL: 'NO_APPLICATION_PROTOCOL',
  ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL: 'NO_APPLICATION_PROTOCOL',
  ECONNRESET: 'PEER_CLOSED',
  EPIPE: 'PEER_CLOSED',
}

/**
 * A handshake that failed in OpenSSL or Node. `authorizationError` is what a
 * server socket holds when OpenSSL refused the client's certificate: Node
 * then closes the socket and reports only "socket hang up" (ECONNRESET).
 */
export function refusalOfTlsError(
  err: { code?: string | undefined } | undefined,
  authorizationError?: string | Error | null,
): TlsRefusal {
  const verify = typeof authorizationError === 'string' ? authorizationError : authorizationError?.message
  if (verify) return { reason: VERIFY_CODES[verify] ?? 'BAD_CHAIN', detail: verify }
  const code = err?.code ?? ''
  const known = VERIFY_CODES[code] ?? HANDSHAKE_CODES[code]
  if (known !== undefined) return { reason: known, detail: code }
  // Any other alert: the peer refused us (our certificate, our parameters) and said so.
  if (/^ERR_SSL_(SSLV3|TLSV1|TLSV13)_ALERT_/.test(code)) return { reason: 'PEER_REFUSED', detail: code }
  return { reason: 'HANDSHAKE_FAILED', ...(code === '' ? {} : { detail: code }) }
}

/** Whether an error code comes from TLS itself rather than from reaching the peer (refused, unreachable, reset). */
export function isTlsErrorCode(code: string | undefined): boolean {
  if (code === undefined) return false
  return code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || Object.hasOwn(VERIFY_CODES, code)
}

const SPIFFE_CHAIN_REASONS: Record<string, TlsRefusalReason> = {
  EXPIRED: 'CERT_EXPIRED',
  NOT_YET_VALID: 'CERT_NOT_YET_VALID',
  // Includes an ID of trust domain A signed by B's CA: the authority is unknown *for that trust domain*.
  UNKNOWN_AUTHORITY: 'UNKNOWN_AUTHORITY',
  NO_BUNDLE: 'UNKNOWN_AUTHORITY',
  NO_AUTHORITIES: 'UNKNOWN_AUTHORITY',
  CHAIN_TOO_LONG: 'BAD_CHAIN',
  PATH_LEN_EXCEEDED: 'BAD_CHAIN',
  NAME_CONSTRAINTS: 'BAD_CHAIN',
}

// What the library's chain policy checks in OpenSSL's stead (SPIFFE_CHAIN_UNVERIFIED with these reasons).
const CHAIN_POLICY_REASONS: Record<string, TlsRefusalReason> = {
  EKU_MISMATCH: 'BAD_CHAIN',
  KEY_USAGE_MISMATCH: 'BAD_CHAIN',
  ISSUER_MISMATCH: 'BAD_CHAIN',
  WEAK_SIGNATURE: 'BAD_CHAIN',
  WEAK_KEY: 'BAD_CHAIN',
  UNVERIFIABLE: 'BAD_CHAIN',
  SIGNER_SPIFFE_ID: 'SPIFFE_RULE',
  SIGNER_TRUST_DOMAIN_MISMATCH: 'SPIFFE_RULE',
}

/** A peer refused by our own SPIFFE verification (tls/peer.ts) after the TLS handshake itself completed. */
export function refusalOfPeerCheck(err: SvidecarError): TlsRefusal {
  const reason = err.reason ?? ''
  if (err.code === 'SVD_IDENTITY_UNAVAILABLE') return { reason: 'NO_LOCAL_SVID' }
  if (reason === 'UNAUTHORIZED') return { reason: 'UNAUTHORIZED' }
  if (reason === 'NO_CERTIFICATE') return { reason: 'NO_CLIENT_CERTIFICATE' }
  const policy = CHAIN_POLICY_REASONS[reason]
  if (policy !== undefined) return { reason: policy, detail: reason }
  const cause = err.cause as { code?: unknown } | undefined
  const spiffeCode = typeof cause?.code === 'string' ? cause.code : ''
  const detail = spiffeCode === '' ? reason : `${spiffeCode}/${reason}`
  // No bundle for the peer's trust domain: its authority is unknown here (SPIFFE_BUNDLE_NOT_FOUND/NO_BUNDLE).
  if (spiffeCode === 'SPIFFE_CHAIN_UNVERIFIED' || spiffeCode === 'SPIFFE_BUNDLE_NOT_FOUND') {
    return { reason: SPIFFE_CHAIN_REASONS[reason] ?? 'BAD_CHAIN', detail }
  }
  return { reason: 'SPIFFE_RULE', ...(detail === '' ? {} : { detail }) }
}

const PEER_REASONS = new Set<TlsRefusalReason>([
  'CERT_EXPIRED',
  'CERT_NOT_YET_VALID',
  'UNKNOWN_AUTHORITY',
  'BAD_CHAIN',
  'NO_CLIENT_CERTIFICATE',
  'SPIFFE_RULE',
  'UNAUTHORIZED',
])

/** The error code an inbound refusal is counted under: the peer's fault, ours, or the handshake's. */
export function inboundCode(reason: TlsRefusalReason): SvidecarErrorCode {
  if (reason === 'NO_LOCAL_SVID') return 'SVD_IDENTITY_UNAVAILABLE'
  return PEER_REASONS.has(reason) ? 'SVD_PEER_REJECTED' : 'SVD_TLS_HANDSHAKE_FAILED'
}

function describeRefusal(reason: TlsRefusalReason): string {
  return TLS_REFUSALS[reason]
}

/** The event every refused handshake publishes, once. */
export function refusalEvent(
  listener: string,
  direction: 'inbound' | 'outbound',
  code: SvidecarErrorCode,
  refusal: TlsRefusal,
): {
  listener: string
  direction: 'inbound' | 'outbound'
  code: string
  reason: string
  message: string
  detail?: string
} {
  return {
    listener,
    direction,
    code,
    reason: refusal.reason,
    message: describeRefusal(refusal.reason),
    ...(refusal.detail === undefined ? {} : { detail: refusal.detail }),
  }
}

/**
 * The error a failed connection to an upstream ends its request with: TLS failures with their refusal reason,
 * everything else (refused, unreachable, reset) by the one upstream mapping (errors/upstream-errors.ts).
 */
export function upstreamConnectError(
  err: Error & { code?: string },
  upstream: string,
  connected = true,
): SvidecarError {
  if (!isTlsErrorCode(err.code)) {
    const e = upstreamError(err, upstream, 'tls-handshake')
    if (e.code !== 'SVD_UPSTREAM_TLS_FAILED') return e
  }
  const refusal = refusalOfTlsError(err)
  return new SvidecarError(
    'SVD_UPSTREAM_TLS_FAILED',
    `TLS handshake with upstream ${upstream} failed: ${refusal.reason} (${err.code || 'no code'})${connected ? '' : ' before the connection was up'}`,
    { reason: refusal.reason, cause: err },
  )
}
