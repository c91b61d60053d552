/**
 * The policy decision for the request's route (`http.route`: method and
 * normalised path, no query), with the subject the identity stage set. A
 * denial is a 403 whose message never names the rule (the audit line does);
 * audit mode lets the request through and the decision event says it would
 * have been denied. Each decision is published once, for the audit log and
 * the decision metrics. An engine that fails denies.
 */
import { SvidecarError } from '../errors/index.ts'
import { publishPolicyDecision } from '../observe/events.ts'
import type { Exchange } from '../pipeline/exchange.ts'
import type { Stage, StageResult } from '../pipeline/stage.ts'
import {
  describeResource,
  type PolicyDecision,
  type PolicyEngine,
  type PolicyRequest,
} from '../policy/engine.ts'

const ACTION = 'http.route'

export function policyStage(engine: PolicyEngine): Stage {
  return {
    name: 'policy',
    onRequest(exchange) {
      const subject = exchange.subject
      if (subject === undefined) {
        // The identity stage runs first; without a subject there is nobody to decide for.
        return new SvidecarError('SVD_INTERNAL', 'internal error', { reason: 'NO_SUBJECT' })
      }
      const resource = { kind: ACTION, method: exchange.method, path: exchange.path } as const
      const request: PolicyRequest = {
        subject,
        resource,
        context: {
          time: new Date(),
          direction: exchange.direction,
          method: exchange.method,
          path: exchange.path,
          attributes: exchange.attributes,
        },
      }
      const started = performance.now()
      let answer: PolicyDecision | Promise<PolicyDecision>
      try {
        answer = engine.decide(request)
      } catch (err) {
        return conclude(exchange, request, failed(engine, err), started)
      }
      if (answer instanceof Promise) {
        return answer.then(
          (decision) => conclude(exchange, request, decision, started),
          (err: unknown) => conclude(exchange, request, failed(engine, err), started),
        )
      }
      return conclude(exchange, request, answer, started)
    },
  }
}

function failed(engine: PolicyEngine, err: unknown): PolicyDecision {
  const why = err instanceof Error ? err.message : 'unknown error'
  return {
    decision: 'deny',
    reason: `the policy engine failed: ${why}`,
    mode: 'enforce',
    engine: engine.name,
  }
}

function conclude(
  exchange: Exchange,
  request: PolicyRequest,
  decision: PolicyDecision,
  started: number,
): StageResult {
  const latencyMs = performance.now() - started
  // "GET /path": the resource as describeResource clips it, without the kind.
  const resource = describeResource(request.resource).slice(ACTION.length + 1)
  publishPolicyDecision({
    time: request.context.time,
    listener: exchange.listener,
    direction: exchange.direction,
    subject: request.subject.toString(),
    action: ACTION,
    resource,
    decision: decision.decision,
    ...(decision.ruleId === undefined ? {} : { ruleId: decision.ruleId }),
    reason: decision.reason,
    mode: decision.mode,
    engine: decision.engine,
    wouldDeny: decision.wouldDeny === true,
    latencyMs,
    traceparent: exchange.traceparent ?? '',
  })
  if (decision.decision === 'allow') return undefined
  return new SvidecarError('SVD_POLICY_DENIED', `the policy does not allow ${resource}`, {
    reason: 'POLICY_DENIED',
  })
}
