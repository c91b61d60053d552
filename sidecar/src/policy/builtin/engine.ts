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
import { auditedDeny, defaultDeny } from '../decisions.ts'
import { RESOURCE_KINDS } from '../definitions.ts'
import {
  type DecisionMode,
  type DenyStyle,
  describeResource,
  type PolicyDecision,
  type PolicyEngine,
  type PolicyRequest,
} from '../engine.ts'
import { type Bindings, conditionBindings } from './condition.ts'
import { pathSegments, uriSegments } from './paths.ts'
import { RuleIndex } from './rule-index.ts'
import type { CompiledRule } from './rules.ts'

const BUILTIN_ENGINE = 'builtin'

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
  /** The policy's `denyStyle`: for the default deny and deny rules without their own. */
  readonly denyStyle: DenyStyle | undefined
  readonly #index: RuleIndex
  /** Resource kinds some rule with a condition names: their decisions may read the request's context. */
  readonly #conditional: ReadonlySet<string>

  constructor(rules: readonly CompiledRule[], mode: DecisionMode, denyStyle?: DenyStyle) {
    this.rules = rules
    this.mode = mode
    this.denyStyle = denyStyle
    this.#index = new RuleIndex(rules)
    this.#conditional = new Set(rules.flatMap((r) => (r.condition === undefined ? [] : [...r.kinds])))
  }

  contextFree(kind: PolicyRequest['resource']['kind']): object | undefined {
    return this.#conditional.has(kind) ? undefined : this
  }

  /** The decision with the style its denial is answered in, when the policy names one. */
  #styled(decision: PolicyDecision, rule?: CompiledRule): PolicyDecision {
    const style = rule?.denyStyle ?? this.denyStyle
    return decision.decision === 'deny' && style !== undefined ? { ...decision, denyStyle: style } : decision
  }

  /** A policy with no rules: everything is denied (what an unloadable policy means). */
  static denyAll(): BuiltinEngine {
    return new BuiltinEngine([], 'enforce')
  }

  decide(request: PolicyRequest): PolicyDecision {
    const resource = request.resource
    if (!KINDS.has(resource.kind)) {
      return defaultDeny(
        BUILTIN_ENGINE,
        this.mode,
        `unknown resource kind "${String(resource.kind)}"`,
        undefined,
      )
    }
    const segments = resourceSegments(request)
    if (typeof segments === 'string') {
      return defaultDeny(
        BUILTIN_ENGINE,
        this.mode,
        `${describeResource(resource)} cannot be matched: ${segments}`,
        undefined,
      )
    }
    const candidates = this.#index.candidates(request.subject, resource, segments)
    let bindings: Bindings | undefined
    let auditDeny: CompiledRule | undefined
    let auditError: string | undefined
    // Deny rules first: an enforced deny ends the decision.
    for (let i = 0; i < candidates.length; i++) {
      const rule = candidates[i] as CompiledRule
      if (rule.effect !== 'deny') continue
      let error: string | undefined
      if (rule.condition !== undefined) {
        bindings ??= conditionBindings(request)
        const r = rule.condition.evaluate(bindings)
        if (r === false) continue
        if (r !== true) error = r.message
      }
      if (rule.mode === 'enforce') {
        if (error === undefined) {
          return this.#styled(
            {
              decision: 'deny',
              ruleId: rule.id,
              reason: `rule ${rule.id} denies ${describeResource(resource)}`,
              mode: 'enforce',
              engine: BUILTIN_ENGINE,
            },
            rule,
          )
        }
        return this.#styled(
          {
            decision: 'deny',
            ruleId: rule.id,
            reason: `rule ${rule.id} denies: its ${error}`,
            mode: 'enforce',
            engine: BUILTIN_ENGINE,
            conditionError: { ruleId: rule.id, message: error },
          },
          rule,
        )
      }
      if (auditDeny === undefined) {
        auditDeny = rule
        auditError = error
      }
    }
    let allowRule: CompiledRule | undefined
    let allowError: { ruleId: string; message: string } | undefined
    for (let i = 0; i < candidates.length; i++) {
      const rule = candidates[i] as CompiledRule
      if (rule.effect !== 'allow') continue
      if (rule.condition !== undefined) {
        bindings ??= conditionBindings(request)
        const r = rule.condition.evaluate(bindings)
        if (r === false) continue
        if (r !== true) {
          allowError ??= { ruleId: rule.id, message: r.message }
          continue
        }
      }
      allowRule = rule
      break
    }
    if (allowRule !== undefined) {
      if (auditDeny === undefined) {
        return {
          decision: 'allow',
          ruleId: allowRule.id,
          reason: `rule ${allowRule.id} allows ${describeResource(resource)}`,
          mode: 'enforce',
          engine: BUILTIN_ENGINE,
        }
      }
      return auditedDeny(BUILTIN_ENGINE, auditDeny.id, auditError, resource, `rule ${allowRule.id} allows`)
    }
    const base = `no rule allows ${describeResource(resource)} for ${request.subject.toString()}`
    if (auditDeny !== undefined && this.mode === 'audit') {
      // Nothing allows it and an audited deny rule matched: that rule is the one that would have denied it.
      return auditedDeny(BUILTIN_ENGINE, auditDeny.id, auditError, resource, base)
    }
    return this.#styled(
      defaultDeny(
        BUILTIN_ENGINE,
        this.mode,
        allowError === undefined ? base : `${base}: rule ${allowError.ruleId}'s ${allowError.message}`,
        allowError,
      ),
    )
  }
}
