/**
 * `Mcp-Param-{Name}` headers (2026-07-28 Streamable HTTP, SEP-2243): a tool
 * whose input schema marks a property with `x-mcp-header: "{Name}"` has
 * that argument mirrored in a header, so a load balancer can route on it.
 * The sidecar authorizes on the body, so a header that disagrees with the
 * body could steer such a router apart from what was authorized: for every
 * tool it has seen listed, the lens remembers which arguments are mirrored
 * (per upstream, bounded) and refuses a call whose mirrored headers differ
 * from its arguments. Headers of tools it has not seen, and `Mcp-Param-*`
 * names a schema does not declare, pass untouched (the server checks them).
 */
import type { IncomingHttpHeaders } from 'node:http'
import { ScopedTable } from '../../pipeline/scoped-table.ts'
import { decodeHeaderValue } from './transports.ts'

/** One mirrored argument: where it sits under `arguments`, and its header (lower case). */
export interface ParamHeader {
  readonly path: readonly string[]
  readonly header: string
  readonly type: 'string' | 'integer' | 'boolean'
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const TYPES: ReadonlySet<string> = new Set(['string', 'integer', 'boolean'])
const MAX_DEPTH = 32

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * The arguments a tool's input schema mirrors in headers: `x-mcp-header` on a string, integer or boolean
 * property reached through `properties` alone. An annotation the spec does not allow there makes the tool
 * invalid to clients (they drop it), so it is not followed.
 */
export function paramHeaders(inputSchema: unknown): ParamHeader[] {
  const out: ParamHeader[] = []
  const visit = (schema: unknown, path: string[]) => {
    if (!isObject(schema) || path.length > MAX_DEPTH) return
    const name = schema['x-mcp-header']
    const type = schema.type
    if (
      path.length > 0 &&
      typeof name === 'string' &&
      TOKEN.test(name) &&
      typeof type === 'string' &&
      TYPES.has(type)
    ) {
      out.push({ path, header: `mcp-param-${name.toLowerCase()}`, type: type as ParamHeader['type'] })
    }
    const properties = schema.properties
    if (!isObject(properties)) return
    for (const key of Object.keys(properties)) visit(properties[key], [...path, key])
  }
  visit(inputSchema, [])
  return out
}

/** The argument at `path`, or undefined when any step is missing. */
function argumentAt(args: unknown, path: readonly string[]): unknown {
  let v: unknown = args
  for (const key of path) {
    if (!isObject(v) || !Object.hasOwn(v, key)) return undefined
    v = v[key]
  }
  return v
}

/** Whether a decoded header value says what the argument is (integers compare as numbers: `42.0` is 42). */
function same(value: string, arg: unknown, type: ParamHeader['type']): boolean {
  if (type === 'string') return typeof arg === 'string' && value === arg
  if (type === 'boolean') return typeof arg === 'boolean' && value === String(arg)
  if (typeof arg !== 'number' || !/^-?\d+(\.0+)?$/.test(value)) return false
  return Number(value) === arg
}

/** Why the mirrored headers of a call differ from its arguments, or undefined when they agree. */
export function paramHeaderMismatch(
  headers: IncomingHttpHeaders,
  declared: readonly ParamHeader[],
  args: unknown,
): string | undefined {
  for (const d of declared) {
    const raw = headers[d.header]
    const arg = argumentAt(args, d.path)
    const label = `the Mcp-Param-${d.header.slice('mcp-param-'.length)} header`
    if (arg === undefined || arg === null) {
      if (raw !== undefined) return `${label} is sent but the argument ${d.path.join('.')} is absent`
      continue
    }
    if (raw === undefined) return `${label} is missing for the argument ${d.path.join('.')}`
    if (Array.isArray(raw)) return `${label} is repeated`
    const value = decodeHeaderValue(raw)
    if (value === undefined) return `${label} is malformed`
    if (!same(value, arg, d.type)) return `${label} differs from the argument ${d.path.join('.')}`
  }
  return undefined
}

const NONE: readonly ParamHeader[] = []

/** What each listed tool mirrors, per upstream; bounded, oldest forgotten first. */
export class ParamHeaderTable {
  readonly #tools: ScopedTable<readonly ParamHeader[]>

  constructor(max: number) {
    this.#tools = new ScopedTable(max)
  }

  /** Records a listed tool's declarations (a tool that mirrors nothing is remembered as such). */
  record(upstream: string, tool: Readonly<Record<string, unknown>>): void {
    const name = tool.name
    if (typeof name === 'string') this.#set(upstream, name, paramHeaders(tool.inputSchema))
  }

  /** Records a listed tool known to declare nothing (its text never names `x-mcp-header`). */
  recordNone(upstream: string, name: string): void {
    this.#set(upstream, name, NONE)
  }

  #set(upstream: string, name: string, declared: readonly ParamHeader[]): void {
    // Listed again as before with nothing declared (most tools): nothing to change.
    if (declared.length === 0 && this.#tools.get(upstream, name)?.length === 0) return
    this.#tools.set(upstream, name, declared)
  }

  /** The declarations of a tool seen listed on `upstream`, or undefined when it has not been. */
  get(upstream: string, name: string): readonly ParamHeader[] | undefined {
    return this.#tools.get(upstream, name)
  }
}
