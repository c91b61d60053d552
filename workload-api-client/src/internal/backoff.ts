/**
 * Delays between Workload API reconnects. The default mirrors go-spiffe's
 * linear backoff (1 s, 2 s, 3 s … capped at 30 s): an agent restart is
 * usually over in seconds, so exponential growth would only delay recovery.
 * Watches reset it once a stream has applied a message and stayed open for a
 * while, never on a reconnect alone (spiffe.md §6), so a flapping stream, or
 * one that ends right after each message, still backs off.
 */
import { SpiffeError } from '../errors.ts'

/** Pluggable backoff: `next()` is the delay in ms before the next attempt. */
export interface BackoffStrategy {
  next(): number
  reset(): void
}

export interface LinearBackoffOptions {
  /** The first delay and the step added per attempt. Default 1000. */
  initialMs?: number
  /** The cap. Default 30000. */
  maxMs?: number
}

export const DEFAULT_BACKOFF_INITIAL_MS = 1000
export const DEFAULT_BACKOFF_MAX_MS = 30_000
/** A watch stream that stayed open this long after a good message resets its backoff. */
export const DEFAULT_STREAM_STABLE_MS = 10_000

export class LinearBackoff implements BackoffStrategy {
  readonly initialMs: number
  readonly maxMs: number
  private attempt = 0

  constructor(options: LinearBackoffOptions = {}) {
    const initialMs = options.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS
    const maxMs = options.maxMs ?? DEFAULT_BACKOFF_MAX_MS
    if (!Number.isFinite(initialMs) || initialMs <= 0) {
      throw new SpiffeError(
        'SPIFFE_ARGUMENT_INVALID',
        `backoff initialMs must be a positive number, got ${initialMs}`,
      )
    }
    if (!Number.isFinite(maxMs) || maxMs < initialMs) {
      throw new SpiffeError(
        'SPIFFE_ARGUMENT_INVALID',
        `backoff maxMs must be at least initialMs, got ${maxMs}`,
      )
    }
    this.initialMs = initialMs
    this.maxMs = maxMs
  }

  next(): number {
    const delay = (this.attempt + 1) * this.initialMs
    if (delay >= this.maxMs) return this.maxMs
    this.attempt++
    return delay
  }

  reset(): void {
    this.attempt = 0
  }
}
