/**
 * One LLM call's usage as one audit line of its own kind, `llm.usage`,
 * written when the call ends. The decision line came earlier (policy decides
 * before a token is known); the two share the request's traceparent. Strings
 * a client chose (the model) go through the logger's redaction and are
 * clipped, like the decision line's resource.
 */

import { auditText } from './audit-line.ts'
import type { LlmUsageEvent } from './events.ts'

const TRACEPARENT = /^(?!ff)[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/
const MAX_FIELD = 256

const text = (s: string) => auditText(s, MAX_FIELD)

const ms = (v: number) => Math.round(v * 1000) / 1000

export function formatUsageLine(e: LlmUsageEvent): string {
  const record = {
    kind: 'llm.usage',
    time: e.time.toISOString(),
    direction: e.direction,
    listener: e.listener,
    ...(e.subject === undefined ? {} : { subject: text(e.subject) }),
    api: e.api,
    ...(e.model === undefined ? {} : { model: text(e.model) }),
    ...(e.provider === undefined ? {} : { provider: text(e.provider) }),
    status: e.status,
    ...(e.code === undefined ? {} : { code: e.code }),
    tokensIn: e.inputTokens,
    tokensOut: e.outputTokens,
    ...(e.cachedInputTokens === undefined ? {} : { tokensCachedIn: e.cachedInputTokens }),
    ...(e.cacheWriteInputTokens === undefined ? {} : { tokensCacheWriteIn: e.cacheWriteInputTokens }),
    estimated: e.estimated,
    ...(e.estimateReason === undefined ? {} : { estimateReason: e.estimateReason }),
    ...(e.timeToFirstTokenMs === undefined ? {} : { timeToFirstTokenMs: ms(e.timeToFirstTokenMs) }),
    durationMs: ms(e.durationMs),
    ...(e.budget === undefined
      ? {}
      : { budget: e.budget.names.map(text), budgetRemaining: e.budget.remaining }),
    ...(e.budgetRefusal === undefined ? {} : { budgetRefusal: e.budgetRefusal }),
    ...(e.traceparent !== undefined && TRACEPARENT.test(e.traceparent) ? { traceparent: e.traceparent } : {}),
  }
  return `${JSON.stringify(record)}\n`
}
