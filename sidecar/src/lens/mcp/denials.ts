/**
 * How a denied MCP message is answered, by the denial's style: `hide`
 * answers as the server would for something that does not exist, `explain`
 * tells the model which rule refused (a tool error result it can act on;
 * a JSON-RPC error elsewhere), `forbid` is HTTP 403 with
 * `insufficient_scope` so a client can step up. The audit line carries the
 * real rule and reason whatever the answer says.
 */
import { ERROR_HEADER, type Reply } from '../../forwarder/respond.ts'
import type { DenyStyle, PolicyDecision, PolicyResource } from '../../policy/engine.ts'
import {
  errorResponse,
  INVALID_PARAMS,
  type JsonRpcId,
  type JsonRpcProblem,
  POLICY_DENIED,
  RESOURCE_NOT_FOUND_LEGACY,
  resultResponse,
} from './jsonrpc.ts'
import type { Era } from './transports.ts'

export interface Denial {
  readonly id: JsonRpcId
  readonly method: string
  readonly resource: PolicyResource
  readonly decision: PolicyDecision
  readonly style: DenyStyle
}

function label(resource: PolicyResource): string {
  switch (resource.kind) {
    case 'mcp.tool':
      return `tool ${resource.name}`
    case 'mcp.prompt':
      return `prompt ${resource.name}`
    case 'mcp.resource':
      return `resource ${resource.uri}`
    case 'mcp.client':
      return `${resource.name} requests from the server`
    default:
      return resource.kind
  }
}

/** The JSON-RPC answer to one denied request (hide and explain). */
export function denialAnswer(d: Denial, era: Era): object {
  if (d.style === 'explain') {
    const rule =
      d.decision.ruleId === undefined ? 'no rule allows it (default deny)' : `rule ${d.decision.ruleId}`
    const text = `svidecar policy denies ${label(d.resource)}: ${rule}`
    if (d.method === 'tools/call') {
      // 2026-07-28 clients refuse a result without resultType (MRTR: absent means complete only before it).
      return resultResponse(d.id, {
        content: [{ type: 'text', text }],
        isError: true,
        ...(era === 'modern' ? { resultType: 'complete' } : {}),
      })
    }
    return errorResponse(d.id, POLICY_DENIED, text, {
      ...(d.decision.ruleId === undefined ? {} : { rule: d.decision.ruleId }),
    })
  }
  // hide: what the server says about a name it does not have.
  switch (d.resource.kind) {
    case 'mcp.tool':
      return errorResponse(d.id, INVALID_PARAMS, `Unknown tool: ${d.resource.name}`)
    case 'mcp.prompt':
      return errorResponse(d.id, INVALID_PARAMS, `Prompt not found: ${d.resource.name}`)
    case 'mcp.resource':
      // A completion names a resource template: servers answer an unknown one as invalid params in every era.
      if (d.method === 'completion/complete') {
        return errorResponse(d.id, INVALID_PARAMS, `Resource template ${d.resource.uri} not found`)
      }
      return errorResponse(
        d.id,
        era === 'legacy' ? RESOURCE_NOT_FOUND_LEGACY : INVALID_PARAMS,
        `Resource not found: ${d.resource.uri}`,
        { uri: d.resource.uri },
      )
    default:
      return errorResponse(d.id, INVALID_PARAMS, 'not found')
  }
}

/** An RFC 6749 scope token: printable ASCII without space, `"` or `\`. */
function scopeOf(resource: PolicyResource): string | undefined {
  const s = `${resource.kind}:${resource.kind === 'mcp.resource' ? resource.uri : 'name' in resource ? resource.name : ''}`
  return /^[\x21\x23-\x5b\x5d-\x7e]{1,200}$/.test(s) ? s : undefined
}

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' }

/** forbid: 403 with the step-up challenge of the MCP authorization spec; the body never names the rule. */
export function forbidReply(d: Denial, batch: boolean, code: string): Reply {
  const scope = scopeOf(d.resource)
  return {
    status: 403,
    headers: {
      ...JSON_HEADERS,
      [ERROR_HEADER]: code,
      'www-authenticate': `Bearer error="insufficient_scope"${scope === undefined ? '' : `, scope="${scope}"`}, error_description="the policy does not allow this ${d.resource.kind}"`,
    },
    body: JSON.stringify(
      errorResponse(batch ? null : d.id, POLICY_DENIED, `the policy does not allow ${label(d.resource)}`),
    ),
  }
}

/**
 * A JSON-RPC answer (200) in place of the upstream's. Without `code` (hide) nothing says the sidecar answered:
 * the client must not learn that the hidden item exists.
 */
export function answerReply(answer: object | object[], code: string | undefined): Reply {
  return {
    status: 200,
    headers: { ...JSON_HEADERS, ...(code === undefined ? {} : { [ERROR_HEADER]: code }) },
    body: JSON.stringify(answer),
  }
}

/** An HTTP error carrying a JSON-RPC error body (bad input, header mismatch, sessions). */
export function problemReply(
  status: number,
  problem: JsonRpcProblem & { data?: unknown },
  code: string,
): Reply {
  return {
    status,
    headers: { ...JSON_HEADERS, [ERROR_HEADER]: code },
    body: JSON.stringify(errorResponse(problem.id, problem.code, problem.message, problem.data)),
  }
}
