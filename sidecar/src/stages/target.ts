/**
 * The request target in origin-form before anything reads the path (route,
 * policy, lenses): listener/request-target.ts rewrites `req.url` or refuses; Max-Forwards on OPTIONS is
 * decremented or answered (listener/max-forwards.ts).
 */
import { applyMaxForwards } from '../listener/max-forwards.ts'
import { normalizeTarget } from '../listener/request-target.ts'
import type { Stage } from '../pipeline/stage.ts'

export function targetStage(): Stage {
  return {
    name: 'target',
    onRequest: (exchange) => normalizeTarget(exchange.req) ?? applyMaxForwards(exchange),
  }
}
