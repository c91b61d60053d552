/**
 * The built-in policy engine. Semantics, in this order:
 *
 * 1. Only rules whose subject, resource and condition all match count.
 * 2. A matching deny rule denies (the first in file order names the rule);
 *    a deny rule whose condition fails to evaluate counts as matching.
 * 3. Otherwise a matching allow rule allows; an allow rule whose condition
 *    fails does not allow (and the default denial says why).
 * 4. Otherwise the request is denied by default.
 *
 * A deny in `audit` mode (the rule's own, or the policy's) is not enforced:
 * the decision is allow with `mode: 'audit'` and `wouldDeny`, naming the
 * rule and the reason it would have denied.
 */
import { RESOURCE_KINDS } from '../definitions.ts'
import {
  type DecisionMode,
  describeResource,
  type PolicyDecision,
  type PolicyEngine,
  type PolicyRequest,
} from '../engine.ts'
import { type Bindings, conditionBindings } from './condition.ts'
import { pathSegments, uriSegments } from './paths.ts'
import { RuleIndex } from './rule-index.ts'
import type { CompiledRule } from './rules.ts'

export const BUILTIN_ENGINE = 'builtin'

const KINDS: ReadonlySet<string> = new Set(RESOURCE_KINDS)

/** The segments a resource is matched on, or why it cannot be matched. */
export function resourceSegments(request: PolicyRequest): readonly string[] | string | undefined {
  const r = request.resource
  if (r.kind === 'http.route') return pathSegments(r.path)
  if (r.kind === 'mcp.resource') return uriSegments(r.uri)
  return undefined
}

export class BuiltinEngine implements PolicyEngine {
  readonly name = BUILTIN_ENGINE
  readonly mode: DecisionMode
  readonly rules: readonly CompiledRule[]
  readonly #index: RuleIndex

  constructor(rules: readonly CompiledRule[], mode: DecisionMode) {
    this.rules = rules
    this.mode = mode
    this.#index = new RuleIndex(rules)
  }

  /** A policy with no rules: everything is denied (what an unloadable policy means). */
  static denyAll(): BuiltinEngine {
    return new BuiltinEngine([], 'enforce')
  }

  decide(request: PolicyRequest): PolicyDecision {
    const resource = request.resource
    if (!KINDS.has(resource.kind)) {
      return this.#deny(undefined, `unknown resource kind "${String(resource.kind)}"`, this.mode)
    }
    const segments = resourceSegments(request)
    if (typeof segments === 'string') {
      return this.#deny(undefined, `${describeResource(resource)} cannot be matched: ${segments}`, this.mode)
    }
    const candidates = this.#index.candidates(request.subject, resource, segments)
    let bindings: Bindings | undefined
    let auditDeny: { rule: CompiledRule; reason: string; error?: string } | undefined
    let allowRule: CompiledRule | undefined
    let allowError: { ruleId: string; message: string } | undefined
    // Deny rules first: any enforced deny ends the decision.
    for (const rule of candidates) {
      if (rule.effect !== 'deny') continue
      let error: string | undefined
      if (rule.condition !== undefined) {
        bindings ??= conditionBindings(request)
        const r = rule.condition.evaluate(bindings)
        if (r === false) continue
        if (r instanceof Error) error = r.message
      }
      const reason =
        error === undefined
          ? `rule ${rule.id} denies ${describeResource(resource)}`
          : `rule ${rule.id} denies: its ${error}`
      if (rule.mode === 'enforce') {
        return {
          decision: 'deny',
          ruleId: rule.id,
          reason,
          mode: 'enforce',
          engine: this.name,
          ...(error === undefined ? {} : { conditionError: { ruleId: rule.id, message: error } }),
        }
      }
      auditDeny ??= error === undefined ? { rule, reason } : { rule, reason, error }
    }
    for (const rule of candidates) {
      if (rule.effect !== 'allow') continue
      if (rule.condition !== undefined) {
        bindings ??= conditionBindings(request)
        const r = rule.condition.evaluate(bindings)
        if (r instanceof Error) {
          allowError ??= { ruleId: rule.id, message: r.message }
          continue
        }
        if (!r) continue
      }
      allowRule = rule
      break
    }
    if (allowRule !== undefined) {
      if (auditDeny !== undefined) {
        return {
          decision: 'allow',
          ruleId: auditDeny.rule.id,
          reason: `audit: ${auditDeny.reason} (not enforced; rule ${allowRule.id} allows)`,
          mode: 'audit',
          engine: this.name,
          wouldDeny: true,
          ...(auditDeny.error === undefined
            ? {}
            : { conditionError: { ruleId: auditDeny.rule.id, message: auditDeny.error } }),
        }
      }
      return {
        decision: 'allow',
        ruleId: allowRule.id,
        reason: `rule ${allowRule.id} allows ${describeResource(resource)}`,
        mode: 'enforce',
        engine: this.name,
      }
    }
    const reason =
      allowError === undefined
        ? `no rule allows ${describeResource(resource)} for ${request.subject.toString()}`
        : `no rule allows ${describeResource(resource)} for ${request.subject.toString()}: rule ${allowError.ruleId}'s ${allowError.message}`
    return this.#deny(undefined, reason, this.mode, allowError)
  }

  #deny(
    ruleId: string | undefined,
    reason: string,
    mode: DecisionMode,
    conditionError?: { ruleId: string; message: string },
  ): PolicyDecision {
    const base = {
      ...(ruleId === undefined ? {} : { ruleId }),
      engine: this.name,
      ...(conditionError === undefined ? {} : { conditionError }),
    }
    if (mode === 'audit') {
      return {
        ...base,
        decision: 'allow',
        reason: `audit: would deny: ${reason}`,
        mode: 'audit',
        wouldDeny: true,
      }
    }
    return { ...base, decision: 'deny', reason, mode: 'enforce' }
  }
}
