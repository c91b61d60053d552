/**
 * Every failure the library reports is a SpiffeError with a stable `code`
 * (and, where one code covers several causes, a stable `reason`). Callers and
 * tests branch on these, never on message text.
 *
 * The brand survives duplicate copies of the package in one process (a common
 * npm outcome), so `err instanceof SpiffeError` keeps working across copies.
 */

const BRAND = Symbol.for('spiffe.error')

/** The code table: one line per code, with what it means. */
export const ERROR_CODES = {
  SPIFFE_ARGUMENT_INVALID: 'a caller passed an argument the API cannot accept',
  SPIFFE_ID_INVALID: 'a SPIFFE ID or trust domain does not follow the SPIFFE ID grammar',
  SPIFFE_MATCHER_INVALID: 'a SPIFFE ID matcher or pattern is malformed',
  SPIFFE_SVID_INVALID: 'an X.509-SVID breaks a rule of the X509-SVID specification',
  SPIFFE_CHAIN_UNVERIFIED: 'a certificate chain does not verify against the trust domain bundle',
  SPIFFE_PEER_UNAUTHORIZED: 'a TLS peer holds a valid SVID whose SPIFFE ID the authorizer does not allow',
  SPIFFE_BUNDLE_NOT_FOUND: 'no bundle is held for the trust domain',
  SPIFFE_BUNDLE_INVALID: 'a bundle (DER, JWKS or SPIFFE bundle document) is malformed',
  SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE:
    'a SPIFFE bundle endpoint could not be reached or did not answer with a bundle',
  SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED:
    'a SPIFFE bundle endpoint did not prove the identity its profile requires',
  SPIFFE_JWT_INVALID: 'a JWT-SVID is malformed or fails validation',
  SPIFFE_WLAPI_ADDRESS_INVALID: 'the Workload API endpoint address is malformed',
  SPIFFE_WLAPI_UNAVAILABLE: 'the Workload API cannot be reached or cannot serve now',
  SPIFFE_WLAPI_NO_IDENTITY: 'the Workload API has no identity for this workload',
  SPIFFE_WLAPI_INVALID_ARGUMENT: 'the Workload API refused the request as invalid',
  SPIFFE_WLAPI_UNIMPLEMENTED: 'the Workload API does not implement this RPC',
  SPIFFE_WLAPI_MALFORMED_RESPONSE: 'the Workload API sent a message that breaks the protocol',
  SPIFFE_WLAPI_RPC_FAILED: 'a Workload API call failed with another gRPC status',
  SPIFFE_WLAPI_SVID_NOT_FOUND: 'no SVID in the Workload API response matches the configured hint or ID',
  SPIFFE_WLAPI_TIMEOUT: 'no usable update arrived from the Workload API in time',
  SPIFFE_WLAPI_CLOSED: 'the client or source was closed',
} as const

export type SpiffeErrorCode = keyof typeof ERROR_CODES

export interface SpiffeErrorOptions {
  /** A finer, stable sub-code, e.g. `TRAILING_SLASH` for SPIFFE_ID_INVALID. */
  reason?: string
  cause?: unknown
}

export class SpiffeError extends Error {
  readonly code: SpiffeErrorCode
  readonly reason: string | undefined

  constructor(code: SpiffeErrorCode, message: string, options: SpiffeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'SpiffeError'
    this.code = code
    this.reason = options.reason
    Object.defineProperty(this, BRAND, { value: true })
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
  }
}

/** True when `err` is a SpiffeError carrying `code`. */
export function isSpiffeError(err: unknown, code?: SpiffeErrorCode): err is SpiffeError {
  return err instanceof SpiffeError && (code === undefined || err.code === code)
}

/** A readable message for any thrown value, for wrapping foreign errors. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}
