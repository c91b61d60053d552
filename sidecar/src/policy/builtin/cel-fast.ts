/**
 * Plain closures for the common shape of a condition: fields and map keys
 * of the request compared with literals (`request.headers["x-env"] ==
 * "prod"`, `subject.segments[0] == "deployer"`, `"x" in request.headers`,
 * `has(peer.id)`), joined with `&&`, `||` and `!`. @bufbuild/cel spends a few
 * microseconds per evaluation on name resolution and value conversion; such
 * an expression takes tens of nanoseconds this way.
 *
 * The closures only answer when the answer is certain: any value or error
 * case outside the plain path (a missing key, a type the closure does not
 * compare, an index out of range) throws FALLBACK, and the caller asks
 * @bufbuild/cel, whose result (and error message) is then the answer. An
 * expression with anything else in it (functions, arithmetic, macros,
 * timestamps) gets no closure at all.
 */

/** Thrown when the plain path cannot answer; the caller evaluates with the CEL library instead. */
const FALLBACK: unique symbol = Symbol('cel-fast fallback')

type Vars = Readonly<Record<string, unknown>>
type Fn = (vars: Vars) => unknown

interface Node {
  exprKind: { case: string | undefined; value?: unknown }
}

const VARIABLES = new Set(['subject', 'peer', 'resource', 'request', 'attributes'])

function fallback(): never {
  throw FALLBACK
}

function compile(expr: Node | undefined): Fn | undefined {
  if (expr === undefined) return undefined
  const { case: kind, value } = expr.exprKind
  switch (kind) {
    case 'constExpr': {
      const c = (value as { constantKind: { case: string | undefined; value?: unknown } }).constantKind
      if (c.case === 'stringValue' || c.case === 'boolValue') {
        const v = c.value
        return () => v
      }
      if (c.case === 'int64Value') {
        const v = Number(c.value as bigint)
        return Number.isSafeInteger(v) ? () => v : undefined
      }
      return undefined
    }
    case 'identExpr': {
      const name = (value as { name: string }).name
      return VARIABLES.has(name) ? (vars) => vars[name] : undefined
    }
    case 'selectExpr': {
      const sel = value as { operand?: Node; field: string; testOnly: boolean }
      const operand = compile(sel.operand)
      if (operand === undefined) return undefined
      const field = sel.field
      if (sel.testOnly) {
        return (vars) => {
          const m = operand(vars)
          return m instanceof Map ? m.has(field) : fallback()
        }
      }
      return (vars) => {
        const m = operand(vars)
        if (!(m instanceof Map)) fallback()
        const v = m.get(field)
        return v === undefined ? fallback() : v
      }
    }
    case 'listExpr': {
      const items = (value as { elements: Node[] }).elements.map(compile)
      if (items.some((i) => i === undefined)) return undefined
      const fns = items as Fn[]
      return (vars) => fns.map((f) => f(vars))
    }
    case 'callExpr': {
      const call = value as { target?: Node; function: string; args: Node[] }
      if (call.target !== undefined) return undefined
      const args = call.args.map(compile)
      if (args.some((a) => a === undefined)) return undefined
      return operator(call.function, args as Fn[])
    }
    default:
      return undefined
  }
}

function bool(v: unknown): boolean {
  return typeof v === 'boolean' ? v : fallback()
}

function equal(a: unknown, b: unknown): boolean {
  // Strings and bools compare as in CEL; anything else (numbers are int or double there) is the library's.
  if ((typeof a === 'string' && typeof b === 'string') || (typeof a === 'boolean' && typeof b === 'boolean'))
    return a === b
  return fallback()
}

function operator(name: string, args: Fn[]): Fn | undefined {
  const [a, b] = args as [Fn, Fn]
  switch (name) {
    case '_&&_':
      // Without errors, CEL's commutative && is the plain one; an error on either side goes to the library.
      return (vars) => bool(a(vars)) && bool(b(vars))
    case '_||_':
      return (vars) => bool(a(vars)) || bool(b(vars))
    case '!_':
      return (vars) => !bool(a(vars))
    case '_==_':
      return (vars) => equal(a(vars), b(vars))
    case '_!=_':
      return (vars) => !equal(a(vars), b(vars))
    case '_[_]':
      return (vars) => {
        const container = a(vars)
        const key = b(vars)
        if (container instanceof Map && typeof key === 'string') {
          const v = container.get(key)
          return v === undefined ? fallback() : v
        }
        if (Array.isArray(container) && typeof key === 'number' && key >= 0 && key < container.length)
          return container[key]
        return fallback()
      }
    case '@in':
      return (vars) => {
        const key = a(vars)
        const container = b(vars)
        if (typeof key !== 'string') return fallback()
        if (container instanceof Map) return container.has(key)
        if (Array.isArray(container) && container.every((x) => typeof x === 'string'))
          return container.includes(key)
        return fallback()
      }
    default:
      return undefined
  }
}

/** A closure for the expression when all of it is in the plain subset; undefined otherwise. */
export function fastCondition(expr: Node | undefined): Fn | undefined {
  return compile(expr)
}
