/**
 * Multi round-trip requests (2026-07-28 `basic/patterns/mrtr`, SEP-2322): a
 * stateless-era server asks the agent for sampling, elicitation or roots by
 * answering `tools/call`, `prompts/get` or `resources/read` with an
 * `input_required` result; the client fulfils its `inputRequests` and
 * retries with `inputResponses`. On the agent's sidecar every embedded
 * request is admitted exactly as a legacy server's own request would be
 * (`mcp.client` policy, and the agent's token budget for sampling). One
 * refused request refuses the whole result: the agent's call gets a
 * JSON-RPC error in its place and never sees what was asked, and whatever
 * was reserved for the others is released.
 */
import type { PolicyDecision } from '../../policy/engine.ts'
import { CLIENT_REQUESTS, type ClientRequest, refusalOf } from './client-requests.ts'
import { errorResponse, type JsonRpcId, POLICY_DENIED } from './jsonrpc.ts'

/** The only requests a server may answer with `input_required`. */
export const MRTR_METHODS: ReadonlySet<string> = new Set(['tools/call', 'prompts/get', 'resources/read'])

export type MrtrMethod = 'tools/call' | 'prompts/get' | 'resources/read'

/** What the agent's sidecar says of one embedded request: delivered, or refused and why. */
export type Admission = true | PolicyDecision | string

export interface InputRequired {
  /** The embedded requests by their server-assigned key; `undefined` for a method no server may ask. */
  readonly requests: ReadonlyArray<{ readonly key: string; readonly request: ClientRequest | undefined }>
  /** The opaque state the retry echoes; it and the key name a sampling reservation across the round trip. */
  readonly state: string | undefined
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/** The embedded requests of an `input_required` result; undefined for any other result. */
export function inputRequiredOf(result: unknown): InputRequired | undefined {
  if (!isObject(result) || result.resultType !== 'input_required') return undefined
  const state = typeof result.requestState === 'string' ? result.requestState : undefined
  const asked = result.inputRequests
  if (!isObject(asked)) return { requests: [], state }
  const requests: Array<{ key: string; request: ClientRequest | undefined }> = []
  for (const key of Object.keys(asked)) {
    const embedded = asked[key]
    const method = isObject(embedded) ? embedded.method : undefined
    const name =
      typeof method === 'string' && Object.hasOwn(CLIENT_REQUESTS, method)
        ? CLIENT_REQUESTS[method]
        : undefined
    if (name === undefined || typeof method !== 'string') {
      requests.push({ key, request: undefined })
      continue
    }
    const params = (embedded as Record<string, unknown>).params
    requests.push({ key, request: { id: key, method, name, params: isObject(params) ? params : undefined } })
  }
  return { requests, state }
}

/** The answers a retry carries, by key: a sampling answer settles what was reserved for its request. */
export function inputResponsesOf(
  params: Readonly<Record<string, unknown>> | undefined,
): { responses: ReadonlyArray<readonly [string, unknown]>; state: string | undefined } | undefined {
  const responses = params?.inputResponses
  if (!isObject(responses)) return undefined
  const state = typeof params?.requestState === 'string' ? params.requestState : undefined
  return { responses: Object.keys(responses).map((k) => [k, responses[k]] as const), state }
}

/**
 * Admits every embedded request in turn; resolves to the error the agent's call gets instead of the result
 * (naming the first refused request), or undefined when all may reach the agent. `release` undoes the
 * admission of a request admitted before another was refused.
 */
export async function screenInputRequests(
  id: JsonRpcId,
  asked: InputRequired,
  admit: (request: ClientRequest) => Admission | Promise<Admission>,
  release: (request: ClientRequest) => void,
): Promise<object | undefined> {
  const admitted: ClientRequest[] = []
  for (const { key, request } of asked.requests) {
    let refusal: object | undefined
    if (request === undefined) {
      refusal = errorResponse(
        id,
        POLICY_DENIED,
        `the agent's svidecar refuses input request ${JSON.stringify(key.slice(0, 100))}: a server may only ask for ${Object.keys(CLIENT_REQUESTS).join(', ')}`,
      )
    } else {
      const admission = await admit(request)
      if (admission === true) {
        admitted.push(request)
        continue
      }
      refusal = refusalOf(request, admission, id)
    }
    for (const r of admitted) release(r)
    return refusal
  }
  return undefined
}
