/**
 * What OPA must answer, and how it becomes a PolicyDecision. The policy's
 * decision document (the package the engine asks for) is:
 *
 *   { "allow": bool, "rule_id"?: string, "reason"?: string, "mode"?: "audit" | "enforce",
 *     "deny_style"?: "hide" | "explain" | "forbid" }
 *
 * `deny_style` says how an MCP lens answers a denial (engine.ts DenyStyle).
 *
 * `allow: false` with `mode: "audit"` is a denial the policy does not
 * enforce: the request goes through, reported as `mode: 'audit'` with
 * `wouldDeny`. `allow: true` with `mode: "audit"` means nothing coherent and
 * is refused as malformed. Anything else that is not this shape (no result,
 * a missing or non-boolean `allow`, fields of the wrong type) is malformed,
 * and a malformed answer denies.
 */
import { DENY_STYLES, describeResource, type PolicyDecision, type PolicyRequest } from '../engine.ts'

export const OPA_ENGINE = 'opa'

const MAX_TEXT = 200
/** The built-in format's rule id pattern: ids end up in metric labels and audit lines. */
const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/

/** Control characters would break a one-line audit record; long text is clipped. */
function clean(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  const one = s.replace(/[\u0000-\u001f\u007f]+/g, ' ')
  return one.length <= MAX_TEXT ? one : `${one.slice(0, MAX_TEXT)}…`
}

/** A decision from the service's answer, or the reason it is malformed. */
export function decisionFromResult(body: unknown, request: PolicyRequest): PolicyDecision | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return 'the response is not a JSON object'
  if (!Object.hasOwn(body, 'result')) return 'the decision is undefined for this input (no "result")'
  const result = (body as { result: unknown }).result
  if (typeof result !== 'object' || result === null || Array.isArray(result)) {
    return 'the result is not an object with "allow"'
  }
  const { allow, rule_id: ruleId, reason, mode, deny_style: style } = result as Record<string, unknown>
  if (typeof allow !== 'boolean') return 'the result has no boolean "allow"'
  if (ruleId !== undefined && (typeof ruleId !== 'string' || !RULE_ID.test(ruleId))) {
    return 'the result\'s "rule_id" is not a rule id'
  }
  if (reason !== undefined && typeof reason !== 'string') return 'the result\'s "reason" is not a string'
  if (mode !== undefined && mode !== 'audit' && mode !== 'enforce') {
    return 'the result\'s "mode" is neither "audit" nor "enforce"'
  }
  if (style !== undefined && !(DENY_STYLES as readonly unknown[]).includes(style)) {
    return 'the result\'s "deny_style" is not hide, explain or forbid'
  }
  if (allow && mode === 'audit') return 'the result allows in "audit" mode (audit marks an unenforced denial)'
  const rule = ruleId === undefined ? undefined : { ruleId }
  const why =
    reason !== undefined && reason !== ''
      ? clean(reason)
      : `${ruleId === undefined ? 'the policy' : `rule ${ruleId}`} ${allow ? 'allows' : 'denies'} ${describeResource(request.resource)}`
  if (allow) return { decision: 'allow', ...rule, reason: why, mode: 'enforce', engine: OPA_ENGINE }
  if (mode === 'audit') {
    return {
      decision: 'allow',
      ...rule,
      reason: `audit: ${why} (not enforced)`,
      mode: 'audit',
      engine: OPA_ENGINE,
      wouldDeny: true,
    }
  }
  return {
    decision: 'deny',
    ...rule,
    reason: why,
    mode: 'enforce',
    engine: OPA_ENGINE,
    ...(style === undefined ? {} : { denyStyle: style as (typeof DENY_STYLES)[number] }),
  }
}

/** A denial the engine makes itself: the service could not be asked, or its answer was unusable. */
export function failClosed(reason: string): PolicyDecision {
  return {
    decision: 'deny',
    reason: `opa: ${reason}; denied (fail closed)`,
    mode: 'enforce',
    engine: OPA_ENGINE,
    failed: true,
  }
}

/** A request the sidecar denies without asking (an unknown kind, an ambiguous path). */
export function refusedLocally(reason: string): PolicyDecision {
  return {
    decision: 'deny',
    reason: `${reason}; denied before asking OPA`,
    mode: 'enforce',
    engine: OPA_ENGINE,
  }
}
