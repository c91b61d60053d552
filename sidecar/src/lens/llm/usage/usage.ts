/**
 * What one LLM call used, as the provider reported it or, when it did not
 * (a stream cut short, a response without usage, usage that does not parse),
 * as the sidecar estimated it with a tokenizer. An estimate says why.
 */

export type EstimateReason =
  /** The response ended (or was cut) before the provider's usage arrived. */
  | 'NO_USAGE'
  /** The provider sent usage the sidecar could not read (not a non-negative integer, wrong shape). */
  | 'MALFORMED_USAGE'
  /** A stream event was larger than the cap; the stream was ended there. */
  | 'EVENT_TOO_LARGE'
  /** The response was neither JSON nor SSE, or too large to look for usage in. */
  | 'UNREADABLE'

export interface LlmUsage {
  readonly inputTokens: number
  readonly outputTokens: number
  /** Anthropic `cache_read_input_tokens`, OpenAI `cached_tokens` (part of the input). */
  readonly cachedInputTokens?: number
  /** Anthropic `cache_creation_input_tokens`. */
  readonly cacheWriteInputTokens?: number
  /** True when any figure is the sidecar's estimate rather than the provider's. */
  readonly estimated: boolean
  readonly reason?: EstimateReason
}

export function totalTokens(u: LlmUsage): number {
  return u.inputTokens + u.outputTokens + (u.cacheWriteInputTokens ?? 0)
}

/** A provider count: a non-negative safe integer, else undefined (and the caller marks usage malformed). */
export function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined
}
