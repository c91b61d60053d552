/**
 * Requests an MCP server makes of the agent (sampling, elicitation, roots),
 * seen on the agent's own sidecar in what the server sends back: events of
 * a POST's SSE answer, the session's GET stream, the HTTP+SSE stream. Each
 * is decided as `mcp.client` named by the client capability it uses, with
 * the agent as the subject. A denied request is not delivered: the sidecar
 * answers it for the agent with a JSON-RPC error, POSTed to the server the
 * way the agent would have answered (the spec lets a client refuse any
 * server request with an error, and the SDK rejects the server's pending
 * call with it).
 */
import type { Upstream } from '../../forwarder/upstreams.ts'
import type { PolicyDecision } from '../../policy/engine.ts'
import { errorResponse, type JsonRpcId, POLICY_DENIED } from './jsonrpc.ts'

/** The server→client methods and the client capability each uses (its `mcp.client` name). */
export const CLIENT_REQUESTS: Readonly<Record<string, string>> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
}

/** A quick look before parsing: only events that may hold one of these methods are parsed for them. */
const MENTIONS = /"(?:sampling\/createMessage|elicitation\/create|roots\/list)"/

/** False only when the text cannot be one of these requests (a method spelled with escapes has a backslash). */
export function mayHoldClientRequest(data: string): boolean {
  return MENTIONS.test(data) || data.includes('\\')
}

export interface ClientRequest {
  readonly id: JsonRpcId
  readonly method: string
  /** The capability: sampling, elicitation or roots. */
  readonly name: string
  readonly params: Readonly<Record<string, unknown>> | undefined
}

/** The server→client request a parsed message is, if it is one (responses and notifications are not). */
export function clientRequestOf(doc: unknown): ClientRequest | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined
  const m = doc as Record<string, unknown>
  const { id, method } = m
  if (typeof method !== 'string' || (typeof id !== 'string' && typeof id !== 'number')) return undefined
  const name = Object.hasOwn(CLIENT_REQUESTS, method) ? CLIENT_REQUESTS[method] : undefined
  if (name === undefined) return undefined
  const params = m.params
  return {
    id,
    method,
    name,
    params:
      params !== null && typeof params === 'object' && !Array.isArray(params)
        ? (params as Record<string, unknown>)
        : undefined,
  }
}

/**
 * The error the agent's sidecar answers a refused server request with: to the server in the session era, and
 * in the stateless era (MRTR) to the agent's own call (`answerId`), in place of the result that asked.
 */
export function refusalOf(
  request: ClientRequest,
  decision: PolicyDecision | string,
  answerId: JsonRpcId = request.id,
): object {
  const why =
    typeof decision === 'string'
      ? decision
      : decision.ruleId === undefined
        ? 'no rule allows it (default deny)'
        : `rule ${decision.ruleId}`
  return errorResponse(
    answerId,
    POLICY_DENIED,
    `the agent's svidecar policy refuses ${request.method}: ${why}`,
    typeof decision === 'string' || decision.ruleId === undefined ? undefined : { rule: decision.ruleId },
  )
}

export interface AnswerTarget {
  readonly upstream: Upstream
  /** The path (and query) the agent POSTs its messages to, as the upstream sees it. */
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
}

/**
 * Sends the answer to the server as the agent's POST would carry it. Best effort: if the server cannot be
 * reached its request times out there, as it would had the agent never answered.
 */
export function answerServer(target: AnswerTarget, answer: object): Promise<void> {
  return target.upstream.pool
    .request({
      origin: target.upstream.url.origin,
      path: target.upstream.basePath + target.path,
      method: 'POST',
      headers: {
        ...target.headers,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify(answer),
    })
    .then((r) => r.body.dump())
    .catch(() => undefined)
}
