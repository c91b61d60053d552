/**
 * CEL conditions (`when:`), compiled once when a policy loads and evaluated
 * per request. @bufbuild/cel plans an expression without checking its
 * names, so this module walks the parsed expression first and refuses any
 * variable, field or function the sidecar does not provide: a typo is a
 * load error, not a silent runtime denial. What still fails at run time (a
 * missing attribute, a bad regular expression, a non-bool result) comes
 * back as an error value, and the engine turns it into a denial.
 */
import { type CelEnv, celEnv, isCelError, parse, plan } from '@bufbuild/cel'
import { strings } from '@bufbuild/cel/ext'
import { timestampFromDate } from '@bufbuild/protobuf/wkt'
import type { SpiffeId } from 'workload-api-client'
import type { PolicyRequest } from '../engine.ts'
import { fastCondition } from './cel-fast.ts'
import { TIME_FUNCS } from './cel-time.ts'
import { pathSegments } from './paths.ts'

type VarType =
  | 'string'
  | 'list'
  | 'map'
  | 'timestamp'
  | { readonly fields: Readonly<Record<string, VarType>> }

const ID_FIELDS = { id: 'string', trustDomain: 'string', path: 'string', segments: 'list' } as const

/** Every variable a condition may use, and the fields of each; documented in the README. */
const CONDITION_VARIABLES: Readonly<Record<string, VarType>> = {
  subject: { fields: ID_FIELDS },
  peer: { fields: ID_FIELDS },
  resource: { fields: { kind: 'string', method: 'string', path: 'string', name: 'string', uri: 'string' } },
  request: { fields: { direction: 'string', method: 'string', path: 'string', headers: 'map' } },
  time: 'timestamp',
  attributes: 'map',
}

/**
 * CEL's type denotations are identifiers in every environment (langdef "Types": `type(x) == int`); the planner
 * resolves them itself, so they are names a condition may use beside the variables.
 */
const TYPE_NAMES: ReadonlySet<string> = new Set([
  'int',
  'uint',
  'double',
  'bool',
  'string',
  'bytes',
  'list',
  'map',
  'null_type',
  'type',
])

/** Qualified type names a condition may use: the protobuf types of `time` and of durations. */
const WELL_KNOWN_TYPES: ReadonlySet<string> = new Set([
  'google.protobuf.Timestamp',
  'google.protobuf.Duration',
])

/** `a.b.c` when the expression is a chain of plain names, else undefined. */
function qualifiedName(expr: ExprNode | undefined): string | undefined {
  if (expr === undefined) return undefined
  const kind = expr.exprKind
  if (kind.case === 'identExpr') return (kind.value as { name: string }).name
  if (kind.case !== 'selectExpr') return undefined
  const sel = kind.value as { operand?: ExprNode; field: string; testOnly: boolean }
  if (sel.testOnly) return undefined
  const base = qualifiedName(sel.operand)
  return base === undefined ? undefined : `${base}.${sel.field}`
}

/** Operators the CEL planner handles itself rather than through the function table. */
const PLANNER_OPERATORS = new Set([
  '_&&_',
  '_||_',
  '_?_:_',
  '_[_]',
  '_[?_]',
  '_?._',
  '@not_strictly_false',
  '__not_strictly_false__',
])

let sharedEnv: CelEnv | undefined
function env(): CelEnv {
  sharedEnv ??= celEnv({ funcs: [...strings, ...TIME_FUNCS] })
  return sharedEnv
}

export class ConditionCompileError extends Error {
  /** 1-based column inside the expression, when known. */
  readonly column: number | undefined
  constructor(message: string, column?: number) {
    super(message)
    this.name = 'ConditionCompileError'
    this.column = column
  }
}

export type Bindings = Record<string, unknown>

export interface CompiledCondition {
  readonly source: string
  /** true or false, or an Error saying why the condition could not be evaluated. */
  evaluate(bindings: Bindings): boolean | Error
}

export function compileCondition(source: string): CompiledCondition {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(source)
  } catch (err) {
    const msg = (err as Error).message
    const m = /^<input>:(\d+):(\d+): ([^\n]*)/.exec(msg)
    if (m !== null) throw new ConditionCompileError(`does not compile: ${m[3]}`, Number(m[2]))
    throw new ConditionCompileError(`does not compile: ${msg.split('\n')[0]}`)
  }
  const positions = parsed.sourceInfo?.positions ?? {}
  const problems: { message: string; id: bigint }[] = []
  try {
    checkExpr(parsed.expr, new Set(), problems)
  } catch (err) {
    // The parser takes a long chain (1 + 1 + ...) as a tree as deep as the chain; walking it can exhaust the stack.
    if (err instanceof RangeError) throw new ConditionCompileError('is nested too deeply to check')
    throw err
  }
  if (problems.length > 0) {
    const first = problems[0] as { message: string; id: bigint }
    const offset = (positions as Record<string, number>)[String(first.id)]
    throw new ConditionCompileError(
      problems.map((p) => p.message).join('; '),
      offset === undefined ? undefined : offset + 1,
    )
  }
  let run: (ctx: Bindings) => unknown
  try {
    run = plan(env(), parsed) as (ctx: Bindings) => unknown
  } catch (err) {
    throw new ConditionCompileError(`does not compile: ${(err as Error).message.split('\n')[0]}`)
  }
  let fast: ReturnType<typeof fastCondition>
  try {
    fast = fastCondition(parsed.expr as ExprNode | undefined)
  } catch (err) {
    if (!(err instanceof RangeError)) throw err
    fast = undefined
  }
  return {
    source,
    evaluate(bindings) {
      if (fast !== undefined) {
        try {
          const r = fast(bindings as unknown as Readonly<Record<string, unknown>>)
          if (typeof r === 'boolean') return r
        } catch {
          // FALLBACK, or anything else the closure did not expect: the library decides.
        }
      }
      let result: unknown
      try {
        result = run(bindings)
      } catch (err) {
        return new Error(`condition failed: ${(err as Error).message}`)
      }
      if (isCelError(result)) return new Error(`condition failed: ${result.message}`)
      if (typeof result !== 'boolean')
        return new Error(`condition returned ${celTypeName(result)}, not a bool`)
      return result
    },
  }
}

function celTypeName(v: unknown): string {
  if (typeof v === 'bigint') return 'an int'
  if (typeof v === 'number') return 'a double'
  if (typeof v === 'string') return 'a string'
  if (v === null) return 'null'
  return 'a value'
}

interface ExprNode {
  id: bigint
  exprKind: { case: string | undefined; value?: unknown }
}

type Found = VarType | 'dyn'

function checkExpr(
  expr: ExprNode | undefined,
  scope: Set<string>,
  problems: { message: string; id: bigint }[],
): Found {
  if (expr === undefined) return 'dyn'
  const kind = expr.exprKind
  switch (kind.case) {
    case 'constExpr':
      return 'dyn'
    case 'identExpr': {
      const name = (kind.value as { name: string }).name
      if (scope.has(name) || TYPE_NAMES.has(name)) return 'dyn'
      // Own names only: `constructor` or `toString` must not pass as variables because every object has them.
      const t = Object.hasOwn(CONDITION_VARIABLES, name) ? CONDITION_VARIABLES[name] : undefined
      if (t === undefined) {
        problems.push({
          message: `unknown variable "${name}" (known: ${Object.keys(CONDITION_VARIABLES).join(', ')})`,
          id: expr.id,
        })
        return 'dyn'
      }
      return t
    }
    case 'selectExpr': {
      const sel = kind.value as { operand?: ExprNode; field: string }
      // The protobuf types a CEL timestamp and duration have: qualified names, not field selections.
      if (!scope.has('google') && WELL_KNOWN_TYPES.has(qualifiedName(expr) ?? '')) return 'dyn'
      const t = checkExpr(sel.operand, scope, problems)
      if (typeof t === 'object') {
        const f = Object.hasOwn(t.fields, sel.field) ? t.fields[sel.field] : undefined
        if (f === undefined) {
          problems.push({
            message: `unknown field "${sel.field}" (known: ${Object.keys(t.fields).join(', ')})`,
            id: expr.id,
          })
          return 'dyn'
        }
        return f
      }
      if (t === 'string' || t === 'list' || t === 'timestamp') {
        problems.push({ message: `a ${t} has no field "${sel.field}"`, id: expr.id })
      }
      return 'dyn'
    }
    case 'callExpr': {
      const call = kind.value as { target?: ExprNode; function: string; args: ExprNode[] }
      if (!PLANNER_OPERATORS.has(call.function) && env().funcs.find(call.function) === undefined) {
        problems.push({ message: `unknown function "${call.function}"`, id: expr.id })
      }
      checkExpr(call.target, scope, problems)
      for (const a of call.args) checkExpr(a, scope, problems)
      return 'dyn'
    }
    case 'listExpr':
      for (const e of (kind.value as { elements: ExprNode[] }).elements) checkExpr(e, scope, problems)
      return 'dyn'
    case 'structExpr': {
      const st = kind.value as {
        messageName: string
        entries: { keyKind: { case: string | undefined; value?: unknown }; value?: ExprNode }[]
      }
      if (st.messageName !== '') {
        problems.push({ message: `messages ("${st.messageName}{...}") are not available`, id: expr.id })
      }
      for (const e of st.entries) {
        if (e.keyKind.case === 'mapKey') checkExpr(e.keyKind.value as ExprNode, scope, problems)
        checkExpr(e.value, scope, problems)
      }
      return 'dyn'
    }
    case 'comprehensionExpr': {
      const c = kind.value as {
        iterVar: string
        iterVar2: string
        accuVar: string
        iterRange?: ExprNode
        accuInit?: ExprNode
        loopCondition?: ExprNode
        loopStep?: ExprNode
        result?: ExprNode
      }
      checkExpr(c.iterRange, scope, problems)
      checkExpr(c.accuInit, scope, problems)
      const inner = new Set(scope)
      for (const v of [c.iterVar, c.iterVar2, c.accuVar]) if (v !== '') inner.add(v)
      checkExpr(c.loopCondition, inner, problems)
      checkExpr(c.loopStep, inner, problems)
      checkExpr(c.result, inner, problems)
      return 'dyn'
    }
    default:
      problems.push({ message: 'unsupported expression', id: expr.id })
      return 'dyn'
  }
}

// Bindings are Maps: @bufbuild/cel reads a Map about three times faster than a plain object.
type Bound = ReadonlyMap<string, unknown>
const EMPTY: Bound = new Map()

/** Subject and peer IDs are few and long-lived (one per connection or workload): their bindings are cached. */
const idBindings = new WeakMap<SpiffeId, Bound>()

function idBinding(id: SpiffeId): Bound {
  let b = idBindings.get(id)
  if (b === undefined) {
    b = new Map<string, unknown>([
      ['id', id.toString()],
      ['trustDomain', id.trustDomain.name],
      ['path', id.path],
      ['segments', id.segments],
    ])
    idBindings.set(id, b)
  }
  return b
}

function toMap(record: Readonly<Record<string, unknown>> | undefined): Bound {
  if (record === undefined) return EMPTY
  const m = new Map<string, unknown>()
  for (const k in record) if (Object.hasOwn(record, k)) m.set(k, record[k])
  return m
}

/**
 * The variables a condition sees for one request. Each is built on first
 * use (the CEL activation reads them as properties), so a condition that
 * only looks at a header never pays for a timestamp.
 */
class RequestBindings {
  readonly #request: PolicyRequest
  #resource: Bound | undefined
  #req: Bound | undefined
  #attributes: Bound | undefined
  #time: unknown

  constructor(request: PolicyRequest) {
    this.#request = request
  }

  get subject(): Bound {
    return idBinding(this.#request.subject)
  }

  /** No peer: an empty map, so `has(peer.id)` is false and `peer.id` is an error (which denies). */
  get peer(): Bound {
    const peer = this.#request.peer
    return peer === undefined ? EMPTY : idBinding(peer)
  }

  get resource(): Bound {
    if (this.#resource === undefined) {
      const r = this.#request.resource
      const res = new Map<string, unknown>([['kind', r.kind]])
      if (r.kind === 'http.route') {
        res.set('method', r.method)
        // The normal form the rules match (as Cedar's resource.path): `/%61dmin` must not slip past `startsWith("/admin")`.
        const segments = pathSegments(r.path)
        res.set('path', typeof segments === 'string' ? r.path : `/${segments.join('/')}`)
      } else if (r.kind === 'mcp.resource') res.set('uri', r.uri)
      else res.set('name', r.name)
      this.#resource = res
    }
    return this.#resource
  }

  get request(): Bound {
    if (this.#req === undefined) {
      const { resource, context } = this.#request
      const req = new Map<string, unknown>([['headers', toMap(context.headers)]])
      if (context.direction !== undefined) req.set('direction', context.direction)
      const method = context.method ?? (resource.kind === 'http.route' ? resource.method : undefined)
      const path = context.path ?? (resource.kind === 'http.route' ? resource.path : undefined)
      if (method !== undefined) req.set('method', method)
      if (path !== undefined) req.set('path', path)
      this.#req = req
    }
    return this.#req
  }

  get time(): unknown {
    this.#time ??= timestampFromDate(this.#request.context.time)
    return this.#time
  }

  get attributes(): Bound {
    this.#attributes ??= toMap(this.#request.context.attributes)
    return this.#attributes
  }
}

/** The variables a condition sees for one request (built once per decision, only when a condition runs). */
export function conditionBindings(request: PolicyRequest): Bindings {
  return new RequestBindings(request) as unknown as Bindings
}
