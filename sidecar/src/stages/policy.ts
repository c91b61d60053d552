/**
 * The policy decision for the request: the resource a lens named (an LLM
 * model) or, when none did, the request's route (`http.route`: method and
 * normalised path, no query), for the subject the identity stage set. A
 * lens that decided per message itself (an MCP batch) marks the exchange
 * decided, and this stage adds nothing. A denial is a 403 whose message
 * never names the rule (the audit line does); audit mode lets the request
 * through and the decision event says it would have been denied.
 */
import { SvidecarError } from '../errors/index.ts'
import { authorize, resourceText } from '../pipeline/authorize.ts'
import type { Stage, StageResult } from '../pipeline/stage.ts'
import type { PolicyDecision, PolicyEngine, PolicyResource } from '../policy/engine.ts'

export function policyStage(engine: PolicyEngine): Stage {
  return {
    name: 'policy',
    onRequest(exchange) {
      if (exchange.decided) return undefined
      const resource: PolicyResource = exchange.resource ?? {
        kind: 'http.route',
        method: exchange.method,
        path: exchange.path,
      }
      const answer = authorize(engine, exchange, resource)
      return answer instanceof Promise
        ? answer.then((decision) => enforce(resource, decision))
        : enforce(resource, answer)
    },
  }
}

function enforce(resource: PolicyResource, decision: PolicyDecision): StageResult {
  if (decision.decision === 'allow') return undefined
  return new SvidecarError(
    'SVD_POLICY_DENIED',
    `the policy does not allow ${resource.kind} ${resourceText(resource)}`,
    { reason: 'POLICY_DENIED' },
  )
}
