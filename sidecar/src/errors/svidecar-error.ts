import { ERROR_TABLE, type SvidecarErrorCode } from './codes.ts'

export interface SvidecarErrorOptions {
  cause?: unknown
  /** Where the problem is, e.g. `deploy/x.yaml:12 listeners[0].address`, for config errors. */
  where?: string
  /** A finer stable sub-code, e.g. the SPIFFE rule a peer broke. */
  reason?: string
  /** Seconds after which the client may try again (sent as `retry-after`). */
  retryAfter?: number
}

/** Every failure the sidecar reports. The message is safe to show a client: never a key, token or stack. */
export class SvidecarError extends Error {
  readonly code: SvidecarErrorCode
  readonly where: string | undefined
  readonly reason: string | undefined
  readonly retryAfter: number | undefined

  constructor(code: SvidecarErrorCode, message: string, options: SvidecarErrorOptions = {}) {
    // A 4xx is a refusal of what the client sent (a denial, a guard, no route): expected, frequent, and its
    // stack is shown nowhere, yet capturing one is most of what building the error costs (bench/RESULTS.md,
    // issue 13). Failures (5xx) keep theirs, for the logs.
    const limit = Error.stackTraceLimit
    if (ERROR_TABLE[code].status < 500) Error.stackTraceLimit = 0
    try {
      super(message, options.cause === undefined ? undefined : { cause: options.cause })
    } finally {
      Error.stackTraceLimit = limit
    }
    this.name = 'SvidecarError'
    this.code = code
    this.where = options.where
    this.reason = options.reason
    this.retryAfter = options.retryAfter
  }

  get status(): number {
    return ERROR_TABLE[this.code].status
  }
}

export function isSvidecarError(err: unknown, code?: SvidecarErrorCode): err is SvidecarError {
  return err instanceof SvidecarError && (code === undefined || err.code === code)
}
