/**
 * One policy decision as one JSON line. Every string that came from a request
 * (the resource, the reason an engine wrote) goes through the logger's
 * redaction, because a path, a CEL error or a decision service's answer can
 * quote a credential; a traceparent that is not one is left out rather than
 * copied, since a client chose it.
 */
import type { PolicyDecisionEvent } from './events.ts'
import { redactString } from './log.ts'

// W3C Trace Context: version-traceid-parentid-flags, lower-case hex; version ff is invalid.
const TRACEPARENT = /^(?!ff)[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/

/** The fields of an audit line, in the order they are written. */
export interface AuditRecord {
  time: string
  direction: string
  listener: string
  subject: string
  peer?: string
  action: string
  resource: string
  decision: 'allow' | 'deny'
  wouldDeny?: true
  rule?: string
  reason: string
  error?: 'engine' | 'condition'
  mode: string
  engine: string
  latencyMs: number
  traceparent?: string
}

const MAX_FIELD = 2048

/**
 * Redacted, well-formed (a lone surrogate a client sent becomes U+FFFD, and a clip never splits a pair: strict
 * JSON readers refuse half a character), and clipped so one line stays one line's worth whatever a decision
 * service answered.
 */
export function auditText(s: string, max: number): string {
  const r = redactString(s).toWellFormed()
  if (r.length <= max) return r
  const code = r.charCodeAt(max - 1)
  const end = code >= 0xd800 && code <= 0xdbff ? max - 1 : max
  return `${r.slice(0, end)}…`
}

const text = (s: string) => auditText(s, MAX_FIELD)

export function auditRecord(e: PolicyDecisionEvent): AuditRecord {
  return {
    time: e.time.toISOString(),
    direction: e.direction,
    listener: e.listener,
    subject: text(e.subject),
    ...(e.peer === undefined ? {} : { peer: text(e.peer) }),
    action: e.action,
    resource: text(e.resource),
    decision: e.decision,
    ...(e.wouldDeny === true ? { wouldDeny: true as const } : {}),
    ...(e.ruleId === undefined ? {} : { rule: text(e.ruleId) }),
    reason: text(e.reason),
    ...(e.error === undefined ? {} : { error: e.error }),
    mode: e.mode,
    engine: e.engine,
    // Microsecond resolution: the built-in engine decides in a few of them.
    latencyMs: Number.isFinite(e.latencyMs) ? Math.round(e.latencyMs * 1000) / 1000 : -1,
    ...(TRACEPARENT.test(e.traceparent) ? { traceparent: e.traceparent } : {}),
  }
}

/** The line as written, newline included; throws only on an event that breaks the contract (an invalid time). */
export function formatAuditLine(e: PolicyDecisionEvent): string {
  return `${JSON.stringify(auditRecord(e))}\n`
}
