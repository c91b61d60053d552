/**
 * The two decisions every in-process engine reports the same way, so the
 * audit line reads alike whichever engine decided: a deny that audit mode let
 * through, and the default deny when no rule decided.
 */
import { type DecisionMode, describeResource, type PolicyDecision, type PolicyResource } from './engine.ts'

/** An audited deny rule that would have denied: let through, reported with the rule and why it went through. */
export function auditedDeny(
  engine: string,
  ruleId: string,
  error: string | undefined,
  resource: PolicyResource,
  because: string,
): PolicyDecision {
  const what =
    error === undefined
      ? `rule ${ruleId} denies ${describeResource(resource)}`
      : `rule ${ruleId} denies: its ${error}`
  const d: PolicyDecision = {
    decision: 'allow',
    ruleId,
    reason: `audit: ${what} (not enforced; ${because})`,
    mode: 'audit',
    engine,
    wouldDeny: true,
  }
  return error === undefined ? d : { ...d, conditionError: { ruleId, message: error } }
}

/** The default deny (no rule decided), enforced or audited by the policy's mode. */
export function defaultDeny(
  engine: string,
  mode: DecisionMode,
  reason: string,
  conditionError: { ruleId: string; message: string } | undefined,
): PolicyDecision {
  const d: PolicyDecision =
    mode === 'audit'
      ? { decision: 'allow', reason: `audit: would deny: ${reason}`, mode: 'audit', engine, wouldDeny: true }
      : { decision: 'deny', reason, mode: 'enforce', engine }
  return conditionError === undefined ? d : { ...d, conditionError }
}
