/**
 * How a policy request looks to Cedar. This is the contract Cedar policies
 * are written against (README, "Cedar"); change it only with them.
 *
 * - principal `Spiffe::Workload::"<SPIFFE ID>"`, attributes:
 *   `id` (the ID), `trustDomain`, `path` (`/ns/x/sa/y`, `""` for none) and
 *   its segments (see below).
 * - action `Spiffe::Action::"<kind>"`: `http.route`, `llm.model`,
 *   `mcp.tool`, `mcp.resource`, `mcp.prompt`, `mcp.client`.
 * - resource, one type per kind:
 *   `Spiffe::Route` (`method`, `path`, segments), `Spiffe::Model` (`name`),
 *   `Spiffe::Tool` (`name`), `Spiffe::Prompt` (`name`),
 *   `Spiffe::Resource` (`uri`, segments of the URI split at `/`),
 *   `Spiffe::ClientRequest` (`name`: sampling, elicitation or roots).
 * - context: `time` (a Cedar `datetime`), and when known `direction`
 *   (`inbound` | `outbound`), `method`, `path`, `peer` (a
 *   `Spiffe::Workload`); always `headers` (a record keyed by lower-case
 *   names) and `attributes` (what lenses learned; numbers that are not
 *   integers and nulls are left out, Cedar has neither).
 *
 * Cedar has sets, not lists, so "segments" are given three ways that
 * together match any position: `depth` (how many), `segments` (a record
 * keyed "0", "1", ... from the start) and `segmentsFromEnd` (keyed "0" for
 * the last). Paths are matched in their normal form (escapes of unreserved
 * characters decoded, query cut off), the form the built-in engine matches.
 */
import type { SpiffeId } from 'workload-api-client'
import type { PolicyRequest } from '../engine.ts'

const NAMESPACE = 'Spiffe'
export const WORKLOAD_TYPE = `${NAMESPACE}::Workload`
export const ACTION_TYPE = `${NAMESPACE}::Action`

/** The Cedar entity type of each resource kind. */
export const RESOURCE_TYPES = {
  'http.route': `${NAMESPACE}::Route`,
  'llm.model': `${NAMESPACE}::Model`,
  'mcp.tool': `${NAMESPACE}::Tool`,
  'mcp.resource': `${NAMESPACE}::Resource`,
  'mcp.prompt': `${NAMESPACE}::Prompt`,
  'mcp.client': `${NAMESPACE}::ClientRequest`,
} as const

/** Cedar's JSON value shapes, as far as this module builds them. */
type CedarValue =
  | boolean
  | number
  | string
  | CedarValue[]
  | { [key: string]: CedarValue }
  | { __entity: { type: string; id: string } }
  | { __extn: { fn: string; arg: string } }

interface CedarUid {
  type: string
  id: string
}

interface CedarEntity {
  uid: CedarUid
  attrs: Record<string, CedarValue>
  parents: CedarUid[]
}

export interface CedarRequest {
  principal: CedarUid
  action: CedarUid
  resource: CedarUid
  context: Record<string, CedarValue>
  entities: CedarEntity[]
}

/** `depth`, `segments` and `segmentsFromEnd` of a segment list. */
function segmentAttrs(segs: readonly string[]): Record<string, CedarValue> {
  const fromStart: Record<string, CedarValue> = {}
  const fromEnd: Record<string, CedarValue> = {}
  const n = segs.length
  for (let i = 0; i < n; i++) {
    fromStart[String(i)] = segs[i] as string
    fromEnd[String(i)] = segs[n - 1 - i] as string
  }
  return { depth: n, segments: fromStart, segmentsFromEnd: fromEnd }
}

/**
 * Which attribute names a request carries. Every attribute costs Cedar time
 * on every call (a `datetime` in the context about as much as the whole
 * rest), and a Cedar policy can only read an attribute whose name it spells
 * out (`.name`, `["name"]`, `has name`): names that appear nowhere in the
 * policy set are left out. A set that spells names with escapes (`\u{..}`,
 * `\x..`) gets everything; so does a context that a policy uses as a whole
 * record (`context == ...`), where a missing key would change the answer.
 */
export interface AttributeFilter {
  readonly entity: (name: string) => boolean
  readonly context: (name: string) => boolean
  /** Workloads are few and long-lived: their entities are built once per filter. */
  readonly workloads: WeakMap<SpiffeId, CedarEntity>
}

const KEEP_ALL = (): boolean => true

/** Every attribute and context key this module sets. */
const ATTRIBUTE_NAMES = [
  'id',
  'trustDomain',
  'path',
  'depth',
  'segments',
  'segmentsFromEnd',
  'method',
  'name',
  'uri',
  'time',
  'direction',
  'peer',
  'headers',
  'attributes',
]

export function attributeFilter(policyTexts: readonly string[]): AttributeFilter {
  const all = policyTexts.join('\n')
  if (/\\[ux]/.test(all)) return { entity: KEEP_ALL, context: KEEP_ALL, workloads: new WeakMap() }
  // Decided once per name here: a request must not search the policy text.
  const names = new Set(ATTRIBUTE_NAMES.filter((n) => all.includes(n)))
  const mentioned = (name: string): boolean => names.has(name)
  const wholeContext = /\bcontext\b(?!\s*(?:\.|\[|has\b))/.test(all)
  return { entity: mentioned, context: wholeContext ? KEEP_ALL : mentioned, workloads: new WeakMap() }
}

/** Every attribute, for callers without a policy set at hand. */
const ALL_ATTRIBUTES: AttributeFilter = {
  entity: KEEP_ALL,
  context: KEEP_ALL,
  workloads: new WeakMap(),
}

function pick(
  attrs: Record<string, CedarValue>,
  keep: (name: string) => boolean,
): Record<string, CedarValue> {
  const out: Record<string, CedarValue> = {}
  for (const k of Object.keys(attrs)) if (keep(k)) out[k] = attrs[k] as CedarValue
  return out
}

function workloadEntity(id: SpiffeId, filter: AttributeFilter = ALL_ATTRIBUTES): CedarEntity {
  let e = filter.workloads.get(id)
  if (e === undefined) {
    e = {
      uid: { type: WORKLOAD_TYPE, id: id.toString() },
      attrs: pick(
        {
          id: id.toString(),
          trustDomain: id.trustDomain.name,
          path: id.path,
          ...segmentAttrs(id.segments),
        },
        filter.entity,
      ),
      parents: [],
    }
    filter.workloads.set(id, e)
  }
  return e
}

/**
 * A value from a lens or a header as a Cedar value, or undefined when Cedar
 * has no such value (fractions, null). Keys Cedar would read as an entity or
 * extension escape (`__entity`, `__extn`, `__expr`) are dropped, so a
 * request can never smuggle an entity reference into the context.
 */
function toCedarValue(v: unknown, depth = 0): CedarValue | undefined {
  if (depth > 16) return undefined
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v
    case 'number':
      return Number.isSafeInteger(v) ? v : undefined
    case 'bigint':
      return v >= -(2n ** 63n) && v < 2n ** 63n ? Number(v) : undefined
    case 'object': {
      if (v === null) return undefined
      if (Array.isArray(v)) {
        const out: CedarValue[] = []
        for (const x of v) {
          const c = toCedarValue(x, depth + 1)
          if (c !== undefined) out.push(c)
        }
        return out
      }
      const out: Record<string, CedarValue> = {}
      for (const k of Object.keys(v)) {
        if (k.startsWith('__')) continue
        const c = toCedarValue((v as Record<string, unknown>)[k], depth + 1)
        if (c !== undefined) out[k] = c
      }
      return out
    }
    default:
      return undefined
  }
}

/**
 * The Cedar request for a policy request whose resource is known and whose
 * segments (for routes and resource URIs) the caller already computed.
 */
export function cedarRequest(
  request: PolicyRequest,
  segments: readonly string[] | undefined,
  filter: AttributeFilter = ALL_ATTRIBUTES,
): CedarRequest {
  const principal = workloadEntity(request.subject, filter)
  const entities: CedarEntity[] = [principal]
  const r = request.resource
  const type = RESOURCE_TYPES[r.kind]
  let resource: CedarEntity
  switch (r.kind) {
    case 'http.route': {
      const path = `/${(segments as readonly string[]).join('/')}`
      resource = {
        uid: { type, id: `${r.method} ${path}` },
        attrs: { method: r.method, path, ...segmentAttrs(segments as readonly string[]) },
        parents: [],
      }
      break
    }
    case 'mcp.resource':
      resource = {
        uid: { type, id: r.uri },
        attrs: { uri: r.uri, ...segmentAttrs(segments as readonly string[]) },
        parents: [],
      }
      break
    default:
      resource = { uid: { type, id: r.name }, attrs: { name: r.name }, parents: [] }
  }
  if (filter.entity !== KEEP_ALL) resource.attrs = pick(resource.attrs, filter.entity)
  entities.push(resource)
  const ctx = request.context
  const context: Record<string, CedarValue> = {
    time: { __extn: { fn: 'datetime', arg: ctx.time.toISOString() } },
  }
  if (ctx.direction !== undefined) context.direction = ctx.direction
  if (ctx.method !== undefined) context.method = ctx.method
  if (ctx.path !== undefined) context.path = ctx.path
  if (request.peer !== undefined) {
    const peer = workloadEntity(request.peer, filter)
    if (peer.uid.id !== principal.uid.id) entities.push(peer)
    context.peer = { __entity: peer.uid }
  }
  // Always records, so a policy can test `context.headers has "x-env"` without a guard on headers itself.
  context.headers = ctx.headers === undefined ? {} : (toCedarValue(ctx.headers) as Record<string, CedarValue>)
  context.attributes =
    ctx.attributes === undefined ? {} : (toCedarValue(ctx.attributes) as Record<string, CedarValue>)
  return {
    principal: principal.uid,
    action: { type: ACTION_TYPE, id: r.kind },
    resource: resource.uid,
    context: filter.context === KEEP_ALL ? context : pick(context, filter.context),
    entities,
  }
}
