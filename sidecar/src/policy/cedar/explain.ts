/**
 * `svidecar policy explain --engine cedar`: the decision of the Cedar engine
 * the sidecar runs, and beside it each policy taken apart with cedar-wasm
 * itself. Every policy is asked alone in four variants (its principal scope
 * only, its action scope only, its resource scope only, then whole, each as
 * a permit), so the answer says which part of which policy matched and
 * what the others lacked, in the same shape as the built-in explanation.
 * Linear in the policies and several Cedar calls each: for people, not for
 * the request path.
 */
import {
  type AuthorizationAnswer,
  type EntityUidJson,
  isAuthorized,
  type PolicyJson,
  policyToJson,
  policyToText,
} from '@cedar-policy/cedar-wasm/nodejs'
import { pathSegments, uriSegments } from '../builtin/paths.ts'
import { type DecisionMode, describeResource, type PolicyRequest } from '../engine.ts'
import type { Explanation, RuleCheck } from '../explain.ts'
import { CedarEngine } from './engine.ts'
import { type CedarRequest, cedarRequest } from './entities.ts'
import type { CedarPolicy, CedarPolicyEntry } from './load.ts'

const MAX_NEAR_MISSES = 5
const ALL = { op: 'All' } as const

type Part = 'principal' | 'action' | 'resource'

function uid(e: EntityUidJson): string {
  const t = '__entity' in e ? e.__entity : e
  return `${t.type}::${JSON.stringify(t.id)}`
}

/** A scope constraint as Cedar writes it: `principal == Spiffe::Workload::"..."`, `resource is Spiffe::Route`. */
function scopeText(part: Part, json: PolicyJson): string {
  const c = json[part] as {
    op: string
    entity?: EntityUidJson
    entities?: EntityUidJson[]
    entity_type?: string
    in?: { entity?: EntityUidJson }
  }
  switch (c.op) {
    case '==':
      return `${part} == ${c.entity === undefined ? '?slot' : uid(c.entity)}`
    case 'in':
      return `${part} in ${c.entities !== undefined ? `[${c.entities.map(uid).join(', ')}]` : c.entity === undefined ? '?slot' : uid(c.entity)}`
    case 'is':
      return `${part} is ${c.entity_type}${c.in?.entity === undefined ? '' : ` in ${uid(c.in.entity)}`}`
    default:
      return `any ${part}`
  }
}

/** The `when`/`unless` clauses of a policy, on one line. */
function conditionText(json: PolicyJson): string {
  const r = policyToText({ ...json, annotations: {}, principal: ALL, action: ALL, resource: ALL })
  if (r.type !== 'success') return 'its conditions'
  const m = /\)\s*((?:when|unless)[\s\S]*?);?\s*$/.exec(r.text)
  return (m?.[1] ?? 'its conditions').replace(/\s+/g, ' ')
}

function ask(call: CedarRequest, policy: PolicyJson): AuthorizationAnswer {
  try {
    return isAuthorized({ ...call, policies: { staticPolicies: { p: policy } } })
  } catch (err) {
    return {
      type: 'failure',
      errors: [{ message: (err as Error).message, help: null, code: null, url: null, severity: null }],
      warnings: [],
    }
  }
}

function checkPolicy(
  p: CedarPolicyEntry,
  mode: DecisionMode,
  call: CedarRequest,
  subject: string,
  resource: string,
): { check: RuleCheck; scope: number } {
  const effect = p.effect === 'permit' ? 'allow' : 'deny'
  const base = { ruleId: p.id, effect, mode: p.mode ?? mode } as const
  const parsed = policyToJson(p.text)
  if (parsed.type !== 'success')
    return {
      check: {
        ...base,
        matched: false,
        lacks: [`policy: ${parsed.errors[0]?.message ?? 'cannot be read'}`],
        met: [],
      },
      scope: 0,
    }
  const json = parsed.json
  const met: string[] = []
  const lacks: string[] = []
  // Scope parts the request falls under, unconstrained ones included: how near a miss it is.
  let scope = 0
  // Each scope part alone, as a permit without conditions: does the request fall under it?
  for (const part of ['principal', 'action', 'resource'] as const) {
    if (json[part].op === 'All') {
      scope++
      continue
    }
    const only = {
      ...json,
      effect: 'permit' as const,
      conditions: [],
      principal: ALL,
      action: ALL,
      resource: ALL,
      [part]: json[part],
    }
    const a = ask(call, only)
    const text = scopeText(part, json)
    if (a.type === 'success' && a.response.decision === 'allow') {
      met.push(`${part}: ${text}`)
      scope++
    } else {
      const who = part === 'principal' ? subject : part === 'action' ? call.action.id : resource
      lacks.push(`${part}: ${who} does not satisfy ${text}`)
    }
  }
  if (json.conditions.length > 0) {
    const cond = conditionText(json)
    const whole = ask(call, { ...json, effect: 'permit', principal: ALL, action: ALL, resource: ALL })
    if (whole.type === 'failure')
      lacks.push(`condition: ${whole.errors.map((e) => e.message).join('; ')} (${cond})`)
    else if (whole.response.diagnostics.errors.length > 0)
      lacks.push(`condition: ${whole.response.diagnostics.errors[0]?.error.message} (${cond})`)
    else if (whole.response.decision === 'allow') met.push(`condition: true (${cond})`)
    else lacks.push(`condition: false (${cond})`)
  }
  return { check: { ...base, matched: lacks.length === 0, lacks, met }, scope }
}

/** Decides `request` with the Cedar engine and explains it policy by policy. */
export function explainCedar(
  policy: CedarPolicy,
  request: PolicyRequest,
  mode: DecisionMode = 'enforce',
): Explanation {
  const decision = new CedarEngine(policy, mode).decide(request)
  const r = request.resource
  const segs =
    r.kind === 'http.route'
      ? pathSegments(r.path)
      : r.kind === 'mcp.resource'
        ? uriSegments(r.uri)
        : undefined
  const described = describeResource(r)
  const checks =
    typeof segs === 'string'
      ? []
      : (() => {
          const call = cedarRequest(request, segs)
          return policy.policies.map((p) => checkPolicy(p, mode, call, request.subject.toString(), described))
        })()
  const matching = checks.filter((c) => c.check.matched).map((c) => c.check)
  // Cedar policies often leave the scope open and say everything in `when`: those count as near too.
  const nearMisses = checks
    .filter((c) => !c.check.matched && c.scope > 0)
    .sort((a, b) => a.check.lacks.length - b.check.lacks.length || b.scope - a.scope)
    .slice(0, MAX_NEAR_MISSES)
    .map((c) => c.check)
  return { request: `${request.subject.toString()} → ${described}`, decision, matching, nearMisses }
}
