/**
 * One LLM call's usage as one audit line of its own kind, `llm.usage`,
 * written when the call ends. The decision line came earlier (policy decides
 * before a token is known); the two share the request's traceparent. Strings
 * a client chose (the model) go through the logger's redaction and are
 * clipped, like the decision line's resource.
 */
import type { LlmUsageEvent } from './events.ts'
import { redactString } from './log.ts'

const TRACEPARENT = /^(?!ff)[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/
const MAX_FIELD = 256

function text(s: string): string {
  const r = redactString(s)
  return r.length <= MAX_FIELD ? r : `${r.slice(0, MAX_FIELD)}…`
}

const ms = (v: number) => Math.round(v * 1000) / 1000

export function formatUsageLine(e: LlmUsageEvent): string {
  // Built field by field rather than from spread literals (one object instead of one per optional field), in
  // the order the line is written.
  const r: Record<string, unknown> = {
    kind: 'llm.usage',
    time: e.time.toISOString(),
    direction: e.direction,
    listener: e.listener,
  }
  if (e.subject !== undefined) r.subject = text(e.subject)
  r.api = e.api
  if (e.model !== undefined) r.model = text(e.model)
  if (e.provider !== undefined) r.provider = text(e.provider)
  r.status = e.status
  if (e.code !== undefined) r.code = e.code
  r.tokensIn = e.inputTokens
  r.tokensOut = e.outputTokens
  if (e.cachedInputTokens !== undefined) r.tokensCachedIn = e.cachedInputTokens
  if (e.cacheWriteInputTokens !== undefined) r.tokensCacheWriteIn = e.cacheWriteInputTokens
  r.estimated = e.estimated
  if (e.estimateReason !== undefined) r.estimateReason = e.estimateReason
  if (e.timeToFirstTokenMs !== undefined) r.timeToFirstTokenMs = ms(e.timeToFirstTokenMs)
  r.durationMs = ms(e.durationMs)
  if (e.budget !== undefined) {
    r.budget = e.budget.names.map(text)
    r.budgetRemaining = e.budget.remaining
  }
  if (e.budgetRefusal !== undefined) r.budgetRefusal = e.budgetRefusal
  if (e.traceparent !== undefined && TRACEPARENT.test(e.traceparent)) r.traceparent = e.traceparent
  return `${JSON.stringify(r)}\n`
}
