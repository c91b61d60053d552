/**
 * The input document the sidecar sends to OPA for one decision. Its shape is
 * part of the `engine: opa` contract (documented in the README):
 *
 *   subject   { id, trustDomain, path, segments }   who acts
 *   peer      { id, trustDomain, path, segments }   the other end, when known
 *   action    the resource kind ("http.route", "llm.model", "mcp.tool", ...)
 *   resource  { kind, method, path, segments } | { kind, name } | { kind, uri, segments }
 *   context   { time, direction, method, path, headers, attributes }
 *
 * Paths and URIs also come as the segments the built-in engine matches on
 * (percent-escapes of unreserved characters decoded), so a Rego policy can
 * match parsed structure rather than substrings. A path or URI the sidecar
 * refuses to match (dot segments, `//`, a bad escape), and a kind it does not
 * know, are denied before OPA is asked: the decision service never sees an
 * ambiguous request. The time is given to the second (RFC 3339, UTC), so
 * identical requests within a second share a cache entry. Paths go without
 * their query and fragment: those can carry tokens, and OPA's decision logs
 * record every input (often shipping them elsewhere).
 */
import type { SpiffeId } from 'workload-api-client'
import { pathSegments, uriSegments } from '../builtin/paths.ts'
import { RESOURCE_KINDS } from '../definitions.ts'
import { describeResource, type PolicyRequest } from '../engine.ts'

export interface OpaIdInput {
  id: string
  trustDomain: string
  path: string
  segments: string[]
}

export interface OpaInput {
  subject: OpaIdInput
  peer?: OpaIdInput
  action: string
  resource: Record<string, unknown>
  context: {
    time: string
    direction?: string
    method?: string
    path?: string
    headers: Record<string, string>
    attributes: Record<string, unknown>
  }
}

const KINDS: ReadonlySet<string> = new Set(RESOURCE_KINDS)

function idInput(id: SpiffeId): OpaIdInput {
  return { id: id.toString(), trustDomain: id.trustDomain.name, path: id.path, segments: id.segments }
}

function withoutQuery(path: string): string {
  const cut = path.search(/[?#]/)
  return cut === -1 ? path : path.slice(0, cut)
}

/** RFC 3339 in UTC, whole seconds. */
function rfc3339Seconds(time: Date): string {
  return `${time.toISOString().slice(0, 19)}Z`
}

/** The input document, or the reason the request is denied without asking OPA. */
export function opaInput(request: PolicyRequest): OpaInput | string {
  const r = request.resource
  if (!KINDS.has(r.kind)) return `unknown resource kind "${String(r.kind)}"`
  let resource: Record<string, unknown>
  if (r.kind === 'http.route') {
    const segments = pathSegments(r.path)
    if (typeof segments === 'string') return `${describeResource(r)} cannot be matched: ${segments}`
    resource = { kind: r.kind, method: r.method, path: withoutQuery(r.path), segments }
  } else if (r.kind === 'mcp.resource') {
    const segments = uriSegments(r.uri)
    if (typeof segments === 'string') return `${describeResource(r)} cannot be matched: ${segments}`
    resource = { kind: r.kind, uri: r.uri, segments }
  } else resource = { kind: r.kind, name: r.name }
  const c = request.context
  const method = c.method ?? (r.kind === 'http.route' ? r.method : undefined)
  const path = c.path ?? (r.kind === 'http.route' ? r.path : undefined)
  const input: OpaInput = {
    subject: idInput(request.subject),
    action: r.kind,
    resource,
    context: {
      time: rfc3339Seconds(c.time),
      ...(c.direction === undefined ? {} : { direction: c.direction }),
      ...(method === undefined ? {} : { method }),
      ...(path === undefined ? {} : { path: withoutQuery(path) }),
      headers: { ...c.headers },
      attributes: { ...c.attributes },
    },
  }
  if (request.peer !== undefined) input.peer = idInput(request.peer)
  return input
}
