/**
 * "Would this request be allowed, and by which rule?", answered offline for
 * `svidecar policy explain`. The decision is the engine's own; beside it,
 * every rule is checked criterion by criterion (subject, kind, resource,
 * condition) so the answer can show the rules that nearly matched and what
 * each lacked. This walk is linear in the rules on purpose: it is for
 * people, not for the request path.
 */

import { conditionBindings } from './builtin/condition.ts'
import { type BuiltinEngine, resourceSegments } from './builtin/engine.ts'
import { matchName } from './builtin/names.ts'
import type { CompiledResource, CompiledRule } from './builtin/rules.ts'
import { matchSegments } from './builtin/segment-trie.ts'
import { describeResource, type PolicyDecision, type PolicyRequest } from './engine.ts'

export interface RuleCheck {
  readonly ruleId: string
  readonly effect: 'allow' | 'deny'
  readonly mode: 'enforce' | 'audit'
  /** All criteria met: the rule took part in the decision. */
  readonly matched: boolean
  /** What the rule would need that the request does not have. */
  readonly lacks: readonly string[]
  /** What did match, for context. */
  readonly met: readonly string[]
}

export interface Explanation {
  readonly request: string
  readonly decision: PolicyDecision
  /** Every rule whose subject, resource and condition matched, in file order. */
  readonly matching: readonly RuleCheck[]
  /** Rules that matched the subject or the resource but not all criteria, closest first. */
  readonly nearMisses: readonly RuleCheck[]
  /** An external engine's own answer (OPA's decision document), when it gave one. */
  readonly document?: unknown
}

const MAX_NEAR_MISSES = 5

function resourceMatches(
  r: CompiledResource,
  request: PolicyRequest,
  segs: readonly string[] | undefined,
): boolean {
  const res = request.resource
  if (r.kind !== res.kind) return false
  switch (r.kind) {
    case 'http.route':
      return (
        res.kind === 'http.route' &&
        (r.methods === undefined || r.methods.includes(res.method)) &&
        segs !== undefined &&
        matchSegments(r.path, segs)
      )
    case 'mcp.resource':
      return segs !== undefined && matchSegments(r.uri, segs)
    default:
      return 'name' in res && matchName(r.glob, res.name)
  }
}

function describeRuleResource(r: CompiledResource): string {
  if (r.kind === 'http.route')
    return `http.route ${r.methods === undefined ? '*' : r.methods.join('|')} ${r.source}`
  return `${r.kind} ${r.source}`
}

function checkRule(rule: CompiledRule, request: PolicyRequest): RuleCheck {
  const lacks: string[] = []
  const met: string[] = []
  const subject = rule.subjects.find((s) => s.matcher(request.subject))
  if (subject === undefined) {
    lacks.push(
      `subject: ${request.subject.toString()} is not ${rule.subjects.map((s) => s.matcher.description).join(' or ')}`,
    )
  } else met.push(`subject: ${subject.matcher.description}`)
  const segsOrWhy = resourceSegments(request)
  const segs = typeof segsOrWhy === 'string' ? undefined : segsOrWhy
  const sameKind = rule.resources.filter((r) => r.kind === request.resource.kind)
  if (sameKind.length === 0) {
    lacks.push(`kind: the rule covers ${[...rule.kinds].join(', ')}, not ${request.resource.kind}`)
  } else {
    const hit = sameKind.find((r) => resourceMatches(r, request, segs))
    if (hit === undefined) {
      const why = typeof segsOrWhy === 'string' ? ` (${segsOrWhy})` : ''
      lacks.push(
        `resource: ${describeResource(request.resource)} is not ${sameKind.map(describeRuleResource).join(' or ')}${why}`,
      )
    } else met.push(`resource: ${describeRuleResource(hit)}`)
  }
  if (rule.condition !== undefined) {
    const r = rule.condition.evaluate(conditionBindings(request))
    if (r instanceof Error) lacks.push(`condition: ${r.message} (${rule.condition.source})`)
    else if (!r) lacks.push(`condition: false (${rule.condition.source})`)
    else met.push(`condition: true (${rule.condition.source})`)
  }
  return { ruleId: rule.id, effect: rule.effect, mode: rule.mode, matched: lacks.length === 0, lacks, met }
}

export function explain(engine: BuiltinEngine, request: PolicyRequest): Explanation {
  const decision = engine.decide(request)
  const checks = engine.rules.map((rule) => checkRule(rule, request))
  const matching = checks.filter((c) => c.matched)
  const nearMisses = checks
    .filter((c) => !c.matched && c.met.some((m) => m.startsWith('subject') || m.startsWith('resource')))
    .sort((a, b) => b.met.length - a.met.length || a.lacks.length - b.lacks.length)
    .slice(0, MAX_NEAR_MISSES)
  return {
    request: `${request.subject.toString()} → ${describeResource(request.resource)}`,
    decision,
    matching,
    nearMisses,
  }
}

/** The explanation as text for a terminal. */
export function formatExplanation(x: Explanation): string {
  const d = x.decision
  const verdict =
    d.decision === 'allow' && d.wouldDeny
      ? 'ALLOWED (audit mode: the policy denies it)'
      : d.decision.toUpperCase()
  const lines = [
    `request:  ${x.request}`,
    `decision: ${verdict}${d.ruleId === undefined ? ' (default deny: no rule allows it)' : ` by rule ${d.ruleId}`}`,
    `reason:   ${d.reason}`,
    `mode:     ${d.mode}    engine: ${d.engine}`,
  ]
  if (x.matching.length > 0) {
    lines.push('', 'matching rules:')
    for (const c of x.matching) lines.push(`  ${c.ruleId} (${c.effect}, ${c.mode}): ${c.met.join('; ')}`)
  }
  if (x.nearMisses.length > 0) {
    lines.push('', 'near misses:')
    for (const c of x.nearMisses) {
      lines.push(`  ${c.ruleId} (${c.effect}, ${c.mode})`)
      for (const m of c.met) lines.push(`    has    ${m}`)
      for (const l of c.lacks) lines.push(`    lacks  ${l}`)
    }
  }
  if (x.document !== undefined) {
    lines.push('', 'decision document:')
    for (const l of JSON.stringify(x.document, null, 2).split('\n')) lines.push(`  ${l}`)
  }
  return `${lines.join('\n')}\n`
}
