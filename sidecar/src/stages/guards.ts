/** The request head's own checks (smuggling, header counts, declared body size): listener/http-guards.ts. */
import { checkRequest, type GuardOptions } from '../listener/http-guards.ts'
import type { Stage } from '../pipeline/stage.ts'

export function guardStage(options: GuardOptions): Stage {
  return { name: 'guards', onRequest: (exchange) => checkRequest(exchange.req, options) }
}
