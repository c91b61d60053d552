/**
 * `svidecar policy explain --engine opa`: the decision the sidecar would get
 * from the OPA server (through the same engine, so the same input and the
 * same reading of the answer), and the decision document itself, since
 * only the server knows which Rego rules produced it. No cache: every
 * explanation asks.
 */
import { describeResource, type PolicyRequest } from '../engine.ts'
import type { Explanation } from '../explain.ts'
import { createOpaEngine } from './engine.ts'
import { opaInput } from './input.ts'

const TIMEOUT_MS = 5000

export async function explainOpa(url: string, pkg: string, request: PolicyRequest): Promise<Explanation> {
  const engine = createOpaEngine({ url, package: pkg, timeoutMs: TIMEOUT_MS, cache: { maxEntries: 0 } })
  try {
    const decision = await engine.decide(request)
    const input = opaInput(request)
    let document: unknown
    if (typeof input !== 'string') {
      try {
        const res = await fetch(engine.endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({ input }),
          signal: AbortSignal.timeout(TIMEOUT_MS),
        })
        // Without a result the package is undefined for this input: the decision already says so.
        if (res.ok) document = ((await res.json()) as { result?: unknown }).result
        else await res.body?.cancel()
      } catch {
        // The decision above already reports an unreachable server.
      }
    }
    return {
      request: `${request.subject.toString()} → ${describeResource(request.resource)}`,
      decision,
      matching: [],
      nearMisses: [],
      ...(document === undefined ? {} : { document }),
    }
  } finally {
    await engine.close()
  }
}
