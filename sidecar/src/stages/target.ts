/**
 * The request target in origin-form before anything reads the path (route,
 * policy, lenses): listener/request-target.ts rewrites `req.url` or refuses.
 */
import { normalizeTarget } from '../listener/request-target.ts'
import type { Stage } from '../pipeline/stage.ts'

export function targetStage(): Stage {
  return { name: 'target', onRequest: (exchange) => normalizeTarget(exchange.req) }
}
