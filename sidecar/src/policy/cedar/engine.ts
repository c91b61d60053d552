/**
 * The Cedar engine: a Cedar policy set, parsed once into cedar-wasm's cache
 * and asked per request. Cedar decides permit/forbid (forbid overrides
 * permit, default deny, a policy whose condition errors is skipped); this
 * engine maps its answer to the same decisions the built-in engine gives:
 *
 * - a satisfied forbid denies and names the policy; a forbid whose
 *   condition errors also denies (Cedar would skip it: fail closed), with
 *   the error as the reason; the first such policy in file order names it;
 * - otherwise a satisfied permit allows (the first in file order);
 * - otherwise the default deny, saying which permit failed to evaluate.
 *
 * Audit: a forbid annotated `@mode("audit")` (or every forbid without
 * `@mode`, when the engine's mode is audit) is not enforced. Such forbids
 * live in a second prepared set, asked only when the first one allows, so
 * an audited denial is reported as allow with `wouldDeny`, as the built-in
 * engine does. In an audit-mode engine the default deny is not enforced
 * either.
 */
import { createHash } from 'node:crypto'
import {
  type AuthorizationAnswer,
  type AuthorizationError,
  preparsePolicySet,
  statefulIsAuthorized,
} from '@cedar-policy/cedar-wasm/nodejs'
import { pathSegments, uriSegments } from '../builtin/paths.ts'
import { auditedDeny, defaultDeny } from '../decisions.ts'
import { RESOURCE_KINDS } from '../definitions.ts'
import {
  type DecisionMode,
  describeResource,
  type PolicyDecision,
  type PolicyEngine,
  type PolicyRequest,
} from '../engine.ts'
import { type AttributeFilter, attributeFilter, type CedarRequest, cedarRequest } from './entities.ts'
import {
  type CedarLoadOptions,
  type CedarPolicy,
  type CedarPolicyEntry,
  entityKey,
  loadCedarPolicy,
} from './load.ts'

type AuthorizationFailure = Extract<AuthorizationAnswer, { type: 'failure' }>

function cedarError(err: unknown): AuthorizationFailure['errors'][number] {
  return {
    message: err instanceof Error ? err.message : String(err),
    help: null,
    code: null,
    url: null,
    severity: null,
  }
}

const CEDAR_ENGINE = 'cedar'
const KINDS: ReadonlySet<string> = new Set(RESOURCE_KINDS)

export interface CedarEngineOptions extends CedarLoadOptions {
  /** The mode of every policy without a `@mode` annotation, and of the default deny. */
  mode?: DecisionMode
}

interface Indexed extends CedarPolicyEntry {
  readonly index: number
  /** This policy's mode, or the engine's. */
  readonly effectiveMode: DecisionMode
}

/**
 * Prepares a policy set in cedar-wasm's cache under a name derived from its
 * content: cedar-wasm offers no way to drop a prepared set, so equal sets
 * (a reload of an unchanged file, two engines on one file) share one entry.
 */
function prepare(policies: readonly Indexed[]): string {
  const set: Record<string, string> = {}
  for (const p of policies) set[p.id] = p.text
  const id = `svidecar-${createHash('sha256').update(JSON.stringify(set)).digest('hex')}`
  const r = preparsePolicySet(id, { staticPolicies: set })
  // The set was parsed already when it loaded; failing here is a bug, not a bad file.
  if (r.type === 'failure')
    throw new Error(`cedar: cannot prepare a checked policy set: ${r.errors[0]?.message}`)
  return id
}

const ANY = '*'

/** At most this many wildcard-scope policies are copied into a (principal, action) slice. */
const MERGE_LIMIT = 16

interface Slices {
  /** By `principal\naction` (either may be `*`). */
  readonly parts: Map<string, string>
  /** A slice that holds every policy that can apply to its (principal, action): one call decides. */
  readonly whole: Map<string, string>
}

/**
 * Cedar evaluates every policy of a set on every request, and each call
 * into cedar-wasm costs tens of microseconds whatever it holds. Policies are
 * therefore sliced by their scope: one prepared set per (principal, action)
 * pair that policies name with `==`, `*` for any other scope, so a request
 * is asked of at most four small sets (its principal and action, its
 * principal with any action, any principal with its action, the rest).
 * When the three wildcard slices of a pair hold few policies, they are
 * copied into the pair's own slice, so that request takes one call. Cedar's
 * answers combine exactly: a satisfied or failing forbid in any slice
 * denies, otherwise a satisfied permit in any slice allows.
 */
function slices(policies: readonly Indexed[]): Slices {
  const groups = new Map<string, Indexed[]>()
  for (const p of policies) {
    const key = `${p.principal ?? ANY}\n${p.action ?? ANY}`
    const list = groups.get(key)
    if (list === undefined) groups.set(key, [p])
    else list.push(p)
  }
  const parts = new Map<string, string>()
  const whole = new Map<string, string>()
  const none: Indexed[] = []
  const anyAny = groups.get(`${ANY}\n${ANY}`) ?? none
  for (const [key, list] of groups) {
    parts.set(key, prepare(list))
    const [p, a] = key.split('\n') as [string, string]
    if (p === ANY || a === ANY) continue
    const extra = [
      ...(groups.get(`${p}\n${ANY}`) ?? none),
      ...(groups.get(`${ANY}\n${a}`) ?? none),
      ...anyAny,
    ]
    if (extra.length > MERGE_LIMIT) continue
    whole.set(key, extra.length === 0 ? (parts.get(key) as string) : prepare([...list, ...extra]))
  }
  return { parts, whole }
}

export class CedarEngine implements PolicyEngine {
  readonly name = CEDAR_ENGINE
  readonly mode: DecisionMode
  readonly source: string
  readonly #byId = new Map<string, Indexed>()
  /** Permits and enforced forbids, by slice. */
  readonly #main: Slices
  /** Forbids in audit mode, by slice. */
  readonly #audit: Slices
  readonly #attributes: AttributeFilter

  constructor(policy: CedarPolicy, mode: DecisionMode = 'enforce') {
    this.mode = mode
    this.source = policy.source
    const main: Indexed[] = []
    const audit: Indexed[] = []
    policy.policies.forEach((p, index) => {
      const entry: Indexed = { ...p, index, effectiveMode: p.mode ?? mode }
      this.#byId.set(p.id, entry)
      if (p.effect === 'forbid' && entry.effectiveMode === 'audit') audit.push(entry)
      else main.push(entry)
    })
    this.#attributes = attributeFilter(policy.policies.map((p) => p.text))
    this.#main = slices(main)
    this.#audit = slices(audit)
  }

  /** Asks every slice that can apply to the request; undefined when none exists. */
  #ask(
    sets: Slices,
    call: CedarRequest,
  ): { reason: string[]; errors: AuthorizationError[] } | AuthorizationFailure | undefined {
    if (sets.parts.size === 0) return undefined
    const p = entityKey(call.principal.type, call.principal.id)
    const a = entityKey(call.action.type, call.action.id)
    const one = sets.whole.get(`${p}\n${a}`)
    const keys = one === undefined ? [`${p}\n${a}`, `${p}\n${ANY}`, `${ANY}\n${a}`, `${ANY}\n${ANY}`] : []
    let reason: string[] | undefined
    let errors: AuthorizationError[] | undefined
    for (let k = -1; k < keys.length; k++) {
      const id = k === -1 ? one : sets.parts.get(keys[k] as string)
      if (id === undefined) continue
      let answer: AuthorizationAnswer
      try {
        answer = statefulIsAuthorized({ ...call, preparsedPolicySetId: id })
      } catch (err) {
        // cedar-wasm throws on input its bindings refuse; a decision must still come back, and deny.
        return { type: 'failure', errors: [cedarError(err)], warnings: [] }
      }
      if (answer.type === 'failure') return answer
      const d = answer.response.diagnostics
      reason = reason === undefined ? d.reason : reason.concat(d.reason)
      errors = errors === undefined ? d.errors : errors.concat(d.errors)
    }
    return reason === undefined ? undefined : { reason, errors: errors ?? [] }
  }

  decide(request: PolicyRequest): PolicyDecision {
    const resource = request.resource
    if (!KINDS.has(resource.kind)) {
      return defaultDeny(
        CEDAR_ENGINE,
        this.mode,
        `unknown resource kind "${String(resource.kind)}"`,
        undefined,
      )
    }
    let segments: readonly string[] | string | undefined
    if (resource.kind === 'http.route') segments = pathSegments(resource.path)
    else if (resource.kind === 'mcp.resource') segments = uriSegments(resource.uri)
    if (typeof segments === 'string') {
      return defaultDeny(
        CEDAR_ENGINE,
        this.mode,
        `${describeResource(resource)} cannot be matched: ${segments}`,
        undefined,
      )
    }
    const call = cedarRequest(request, segments, this.#attributes)
    let permit: Indexed | undefined
    let permitError: { policy: Indexed; message: string } | undefined
    const main = this.#ask(this.#main, call)
    if (main !== undefined) {
      if ('type' in main) return this.#failed(main)
      const forbid = this.#first(main.reason, main.errors, 'forbid')
      if (forbid !== undefined) {
        if (forbid.message === undefined) {
          return {
            decision: 'deny',
            ruleId: forbid.policy.id,
            reason: `rule ${forbid.policy.id} denies ${describeResource(resource)}`,
            mode: 'enforce',
            engine: CEDAR_ENGINE,
            ...(forbid.policy.denyStyle === undefined ? {} : { denyStyle: forbid.policy.denyStyle }),
          }
        }
        return {
          decision: 'deny',
          ruleId: forbid.policy.id,
          reason: `rule ${forbid.policy.id} denies: its ${forbid.message}`,
          mode: 'enforce',
          engine: CEDAR_ENGINE,
          conditionError: { ruleId: forbid.policy.id, message: forbid.message },
          ...(forbid.policy.denyStyle === undefined ? {} : { denyStyle: forbid.policy.denyStyle }),
        }
      }
      permit = this.#first(main.reason, [], 'permit')?.policy
      if (permit === undefined) {
        const e = this.#first([], main.errors, 'permit')
        if (e !== undefined) permitError = { policy: e.policy, message: e.message as string }
      }
    }
    if (permit === undefined) {
      const base = `no rule allows ${describeResource(resource)} for ${request.subject.toString()}`
      if (this.mode === 'audit') {
        // Nothing allows it in an audit engine: the audited forbid that matched is the one that would deny it.
        const audit = this.#ask(this.#audit, call)
        if (audit !== undefined && 'type' in audit) return this.#failed(audit)
        const forbid = audit === undefined ? undefined : this.#first(audit.reason, audit.errors, 'forbid')
        if (forbid !== undefined)
          return auditedDeny(CEDAR_ENGINE, forbid.policy.id, forbid.message, resource, base)
      }
      if (permitError === undefined) return defaultDeny(CEDAR_ENGINE, this.mode, base, undefined)
      return defaultDeny(
        CEDAR_ENGINE,
        this.mode,
        `${base}: rule ${permitError.policy.id}'s ${permitError.message}`,
        {
          ruleId: permitError.policy.id,
          message: permitError.message,
        },
      )
    }
    const allowed: PolicyDecision = {
      decision: 'allow',
      ruleId: permit.id,
      reason: `rule ${permit.id} allows ${describeResource(resource)}`,
      mode: 'enforce',
      engine: CEDAR_ENGINE,
    }
    const audit = this.#ask(this.#audit, call)
    if (audit === undefined) return allowed
    if ('type' in audit) return this.#failed(audit)
    const forbid = this.#first(audit.reason, audit.errors, 'forbid')
    if (forbid === undefined) return allowed
    return auditedDeny(CEDAR_ENGINE, forbid.policy.id, forbid.message, resource, `rule ${permit.id} allows`)
  }

  /**
   * The earliest policy (file order) of one effect that Cedar found
   * satisfied (`reason`) or that failed to evaluate (`errors`, with the
   * message, so a caller can tell the two apart).
   */
  #first(
    reason: readonly string[],
    errors: readonly AuthorizationError[],
    effect: 'permit' | 'forbid',
  ): { policy: Indexed; message: string | undefined } | undefined {
    let best: { policy: Indexed; message: string | undefined } | undefined
    for (const id of reason) {
      const p = this.#byId.get(id)
      if (p === undefined || p.effect !== effect) continue
      if (best === undefined || p.index < best.policy.index) best = { policy: p, message: undefined }
    }
    for (const e of errors) {
      const p = this.#byId.get(e.policyId)
      if (p === undefined || p.effect !== effect) continue
      if (best === undefined || p.index < best.policy.index) {
        best = { policy: p, message: `condition failed: ${e.error.message}` }
      }
    }
    return best
  }

  /** Cedar refused the request itself (not a policy's condition): deny, whatever the mode. */
  #failed(answer: AuthorizationFailure): PolicyDecision {
    const message = answer.errors.map((e) => e.message).join('; ')
    return {
      decision: 'deny',
      reason: `cedar could not evaluate the request: ${message}`,
      mode: 'enforce',
      engine: CEDAR_ENGINE,
      failed: true,
    }
  }
}

/** Loads a Cedar policy file (validated against `options.schema` when given) into an engine. */
export function createCedarEngine(file: string, options: CedarEngineOptions = {}): CedarEngine {
  const { mode, ...load } = options
  return new CedarEngine(loadCedarPolicy(file, load), mode)
}
