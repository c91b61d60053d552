/**
 * One policy decision for one resource of an exchange, reported once. The
 * policy stage decides the request's resource with it; a lens that must
 * decide several resources of one request (each message of an MCP batch) or
 * filter a response (a tool list) calls it per resource. Either way the
 * decision event (audit log, decision metrics) has the same shape, and an
 * engine that throws or rejects denies.
 */
import type { SpiffeId } from 'workload-api-client'
import { publishPolicyDecision, wantsPolicyDecision } from '../observe/events.ts'
import {
  describeResource,
  type PolicyDecision,
  type PolicyEngine,
  type PolicyRequest,
  type PolicyResource,
} from '../policy/engine.ts'
import type { Exchange } from './exchange.ts'

/** The headers the policy may read: every decision of one request sees the same copy, kept on the exchange. */
function policyHeaders(exchange: Exchange, names: readonly string[]): Readonly<Record<string, string>> {
  let headers = exchange.policyHeaders
  if (headers === undefined) {
    const out: Record<string, string> = {}
    const sent = exchange.req.headers
    for (const name of names) {
      const v = sent[name]
      // Node joins repeated fields with ", " already; only set-cookie stays a list.
      if (v !== undefined) out[name] = Array.isArray(v) ? v.join(', ') : v
    }
    headers = out
    exchange.policyHeaders = headers
  }
  return headers
}

export interface AuthorizeOptions {
  /**
   * Publish the decision event (default true). False publishes only denials (and denials `mode: audit` let
   * through); a function publishes those only when it says so (a list filter that audits an item once a while).
   */
  report?: boolean | ((decision: PolicyDecision, resource: PolicyResource) => boolean)
}

/**
 * Decides `resource` for the exchange's subject. Synchronous engines answer synchronously; the caller
 * awaits only when it gets a promise. The exchange must have a subject (the identity stage ran).
 */
export function authorize(
  engine: PolicyEngine,
  exchange: Exchange,
  resource: PolicyResource,
  options: AuthorizeOptions = {},
): PolicyDecision | Promise<PolicyDecision> {
  const subject = exchange.subject
  // The identity stage runs first; without a subject there is nobody to decide for.
  if (subject === undefined) return noSubject(engine, exchange, resource, options)
  const request = requestOf(subject, peerOf(exchange, subject), resource, contextOf(engine, exchange))
  return decide(engine, exchange, request, options)
}

/**
 * Decides resources for the exchange's subject at one instant, as {@link authorize} does each: a list filter
 * that asks for 1,000 items builds the request's context once.
 */
export function authorizer(
  engine: PolicyEngine,
  exchange: Exchange,
): (resource: PolicyResource, options?: AuthorizeOptions) => PolicyDecision | Promise<PolicyDecision> {
  const subject = exchange.subject
  if (subject === undefined) return (resource, options = {}) => noSubject(engine, exchange, resource, options)
  const peer = peerOf(exchange, subject)
  const context = contextOf(engine, exchange)
  return (resource, options = {}) =>
    decide(engine, exchange, requestOf(subject, peer, resource, context), options)
}

/** The peer the policy sees: none when it is the subject itself (inbound). */
function peerOf(exchange: Exchange, subject: SpiffeId): SpiffeId | undefined {
  return exchange.peer === undefined || exchange.peer === subject ? undefined : exchange.peer
}

function requestOf(
  subject: SpiffeId,
  peer: SpiffeId | undefined,
  resource: PolicyResource,
  context: PolicyRequest['context'],
): PolicyRequest {
  return peer === undefined ? { subject, resource, context } : { subject, peer, resource, context }
}

/** A denial the engine was never asked for; still one decision event, with an empty subject, so it is audited. */
function noSubject(
  engine: PolicyEngine,
  exchange: Exchange,
  resource: PolicyResource,
  options: AuthorizeOptions,
): PolicyDecision {
  const decision = failed(engine, new Error('the request has no subject'))
  // A denial: published unless a report function declines it (report false still publishes denials).
  if (typeof options.report === 'function' && !options.report(decision, resource)) return decision
  if (!wantsPolicyDecision()) return decision
  publishPolicyDecision({
    time: new Date(),
    listener: exchange.listener,
    direction: exchange.direction,
    subject: '',
    action: resource.kind,
    resource: resourceText(resource),
    decision: decision.decision,
    reason: decision.reason,
    ...errorOf(decision),
    mode: decision.mode,
    engine: decision.engine,
    wouldDeny: false,
    latencyMs: 0,
    traceparent: exchange.traceparent ?? '',
  })
  return decision
}

function contextOf(engine: PolicyEngine, exchange: Exchange): PolicyRequest['context'] {
  return {
    time: new Date(),
    direction: exchange.direction,
    method: exchange.method,
    path: exchange.path,
    ...(engine.headers === undefined ? {} : { headers: policyHeaders(exchange, engine.headers) }),
    attributes: exchange.attributes,
  }
}

function decide(
  engine: PolicyEngine,
  exchange: Exchange,
  request: PolicyRequest,
  options: AuthorizeOptions,
): PolicyDecision | Promise<PolicyDecision> {
  const report = options.report ?? true
  const started = performance.now()
  let answer: PolicyDecision | Promise<PolicyDecision>
  try {
    answer = engine.decide(request)
  } catch (err) {
    return concluded(exchange, request, failed(engine, err), started, report)
  }
  if (answer instanceof Promise) {
    return answer.then(
      (decision) => concluded(exchange, request, decision, started, report),
      (err: unknown) => concluded(exchange, request, failed(engine, err), started, report),
    )
  }
  return concluded(exchange, request, answer, started, report)
}

function failed(engine: PolicyEngine, err: unknown): PolicyDecision {
  const why = err instanceof Error ? err.message : 'unknown error'
  return {
    decision: 'deny',
    reason: `the policy engine failed: ${why}`,
    mode: 'enforce',
    engine: engine.name,
    failed: true,
  }
}

function concluded(
  exchange: Exchange,
  request: PolicyRequest,
  decision: PolicyDecision,
  started: number,
  report: NonNullable<AuthorizeOptions['report']>,
): PolicyDecision {
  if (report !== true) {
    if (decision.decision === 'allow' && decision.wouldDeny !== true) return decision
    if (report !== false && !report(decision, request.resource)) return decision
  }
  if (!wantsPolicyDecision()) return decision
  const action = request.resource.kind
  publishPolicyDecision({
    time: request.context.time,
    listener: exchange.listener,
    direction: exchange.direction,
    subject: request.subject.toString(),
    ...(request.peer === undefined ? {} : { peer: request.peer.toString() }),
    action,
    // "GET /path" or the name: the resource as describeResource clips it, without the kind.
    resource: resourceText(request.resource),
    decision: decision.decision,
    ...(decision.ruleId === undefined ? {} : { ruleId: decision.ruleId }),
    reason: decision.reason,
    ...errorOf(decision),
    mode: decision.mode,
    engine: decision.engine,
    wouldDeny: decision.wouldDeny === true,
    latencyMs: performance.now() - started,
    traceparent: exchange.traceparent ?? '',
  })
  return decision
}

/** Why a decision is not simply the policy's answer, for the event (metrics and audit tell it from a deny). */
function errorOf(decision: PolicyDecision): { error?: 'engine' | 'condition' } {
  if (decision.failed === true) return { error: 'engine' }
  return decision.conditionError === undefined ? {} : { error: 'condition' }
}

/** The resource as describeResource writes it, without the leading kind. */
export function resourceText(resource: PolicyResource): string {
  return describeResource(resource).slice(resource.kind.length + 1)
}
