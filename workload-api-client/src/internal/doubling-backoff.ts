/**
 * Retry delays for bundle endpoint polls: start small, double per failure.
 * The caller caps each delay at its poll interval (SPIFFE_Federation.md §6.2:
 * retry at the next interval, never aggressively).
 */
import type { BackoffStrategy } from './backoff.ts'

// 2^20 × the first delay is beyond any poll interval; stop doubling there.
const MAX_DOUBLINGS = 20

export class DoublingBackoff implements BackoffStrategy {
  readonly #initialMs: number
  #failures = 0

  constructor(initialMs: number) {
    this.#initialMs = initialMs
  }

  next(): number {
    const delay = this.#initialMs * 2 ** this.#failures
    if (this.#failures < MAX_DOUBLINGS) this.#failures++
    return delay
  }

  reset(): void {
    this.#failures = 0
  }
}
