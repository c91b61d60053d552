/**
 * A small declarative schema for the config file. Each node checks one
 * value, converts it (durations to ms, addresses to host and port) and
 * reports every problem with the field path; nothing stops at the first
 * issue, so one run of `svidecar config check` shows them all.
 */

export type Path = ReadonlyArray<string | number>

export interface Issues {
  add(path: Path, message: string): void
}

export type Check<T> = (value: unknown, path: Path, issues: Issues) => T | undefined

/** A JSON Schema (draft 2020-12) fragment: what a check accepts, for editors and `config.schema.json`. */
export type JsonSchema = { [key: string]: unknown }

/**
 * The JSON Schema of checks that are not built from obj, list and record:
 * the leaf combinators below record theirs, and a hand-written check can
 * name its own with withJsonSchema. A thunk is resolved when the schema is
 * generated (for checks made of other checks).
 */
const JSON_SCHEMAS = new WeakMap<object, JsonSchema | (() => JsonSchema)>()

/** Records what `check` accepts, as JSON Schema; returns the check itself. */
export function withJsonSchema<T>(check: Check<T>, schema: JsonSchema | (() => JsonSchema)): Check<T> {
  JSON_SCHEMAS.set(check, schema)
  return check
}

export function formatPath(path: Path): string {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`
  return out === '' ? '(root)' : out
}

function typeName(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a mapping'
  return `${typeof v} ${JSON.stringify(v)}`
}

export const str = (opts: { pattern?: RegExp; what?: string } = {}): Check<string> =>
  withJsonSchema<string>(
    strCheck(opts),
    opts.pattern === undefined
      ? { type: 'string', minLength: 1 }
      : {
          type: 'string',
          minLength: 1,
          pattern: opts.pattern.source,
          ...(opts.what === undefined ? {} : { description: opts.what }),
        },
  )

const strCheck =
  (opts: { pattern?: RegExp; what?: string }): Check<string> =>
  (v, path, issues) => {
    if (typeof v !== 'string' || v === '') {
      issues.add(path, `expected a non-empty string, got ${typeName(v)}`)
      return undefined
    }
    if (opts.pattern && !opts.pattern.test(v)) {
      issues.add(path, `"${v}" is not ${opts.what ?? `of the form ${opts.pattern}`}`)
      return undefined
    }
    return v
  }

export const int = (min: number, max: number): Check<number> =>
  withJsonSchema<number>(
    (v, path, issues) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        issues.add(path, `expected an integer from ${min} to ${max}, got ${typeName(v)}`)
        return undefined
      }
      return v
    },
    { type: 'integer', minimum: min, maximum: max },
  )

export const bool: Check<boolean> = withJsonSchema<boolean>(
  (v, path, issues) => {
    if (typeof v !== 'boolean') {
      issues.add(path, `expected true or false, got ${typeName(v)}`)
      return undefined
    }
    return v
  },
  { type: 'boolean' },
)

export const oneOf = <T extends string>(values: readonly T[]): Check<T> =>
  withJsonSchema<T>(
    (v, path, issues) => {
      if (typeof v !== 'string' || !values.includes(v as T)) {
        issues.add(path, `expected one of ${values.join(', ')}, got ${typeName(v)}`)
        return undefined
      }
      return v as T
    },
    { type: 'string', enum: [...values] },
  )

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Node keeps timers in 32 bits: a longer one fires at once (TimeoutOverflowWarning). */
const MAX_DURATION_MS = 2 ** 31 - 1

/**
 * A duration as JSON Schema; `nonZero` leaves out 0 in every unit. The
 * upper bound of strings (MAX_DURATION_MS) is the loader's alone.
 */
function durationSchema(nonZero: boolean): JsonSchema {
  return {
    description: 'a duration: "500ms", "10s", "5m", "1h", or a number of milliseconds',
    anyOf: [
      {
        type: 'string',
        pattern: nonZero ? '^\\s*0*[1-9][0-9]*(ms|s|m|h)\\s*$' : '^\\s*[0-9]+(ms|s|m|h)\\s*$',
      },
      { type: 'integer', minimum: nonZero ? 1 : 0, maximum: MAX_DURATION_MS },
    ],
  }
}

/** "500ms", "10s", "5m", "1h", or a number of milliseconds; at most MAX_DURATION_MS (about 24 days). */
export const duration: Check<number> = (v, path, issues) => {
  const m = typeof v === 'string' ? /^(\d+)(ms|s|m|h)$/.exec(v.trim()) : null
  const ms =
    typeof v === 'number' && Number.isInteger(v) && v >= 0
      ? v
      : m === null
        ? undefined
        : Number(m[1]) * (UNITS[m[2] as string] as number)
  if (ms === undefined) {
    issues.add(path, `expected a duration such as "500ms", "10s", "5m" or "1h", got ${typeName(v)}`)
    return undefined
  }
  if (ms > MAX_DURATION_MS) {
    issues.add(
      path,
      `${JSON.stringify(v)} (${ms} ms) is out of range: Node timers hold at most ${MAX_DURATION_MS} ms (about 24 days)`,
    )
    return undefined
  }
  return ms
}
withJsonSchema(duration, durationSchema(false))

/** A duration where 0 would break something; `why` says what. */
export const nonZeroDuration = (why: string): Check<number> =>
  withJsonSchema<number>((v, path, issues) => {
    const ms = duration(v, path, issues)
    if (ms === 0) {
      issues.add(path, `must be longer than 0: ${why}`)
      return undefined
    }
    return ms
  }, durationSchema(true))

const listCheck =
  <T>(item: Check<T>): Check<T[]> =>
  (v, path, issues) => {
    if (!Array.isArray(v)) {
      issues.add(path, `expected a list, got ${typeName(v)}`)
      return undefined
    }
    const out: T[] = []
    let ok = true
    v.forEach((x, i) => {
      const r = item(x, [...path, i], issues)
      if (r === undefined) ok = false
      else out.push(r)
    })
    return ok ? out : undefined
  }

export interface Field<T> {
  check: Check<T>
  required?: boolean
  default?: T
}

type Shape = Record<string, Field<unknown>>
type ValueOf<F> = F extends Field<infer T> ? T : never
/** Required fields and fields with a default are always present in the result. */
export type Parsed<S extends Shape> = {
  [K in keyof S]: S[K] extends { required: true } | { default: unknown }
    ? ValueOf<S[K]>
    : ValueOf<S[K]> | undefined
}

export function field<T>(check: Check<T>): Field<T>
export function field<T>(check: Check<T>, opts: { required: true }): Field<T> & { required: true }
export function field<T>(check: Check<T>, opts: { default: T }): Field<T> & { default: T }
export function field<T>(check: Check<T>, opts: { required?: boolean; default?: T } = {}): Field<T> {
  return { check, ...opts }
}

/** A mapping with exactly these keys; unknown keys are errors (a typo must never be silently ignored). */
const objCheck =
  <S extends Shape>(shape: S): Check<Parsed<S>> =>
  (v, path, issues) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      issues.add(path, `expected a mapping, got ${typeName(v)}`)
      return undefined
    }
    const input = v as Record<string, unknown>
    let ok = true
    for (const key of Object.keys(input)) {
      if (!Object.hasOwn(shape, key)) {
        issues.add([...path, key], `unknown field (expected one of: ${Object.keys(shape).join(', ')})`)
        ok = false
      }
    }
    const out: Record<string, unknown> = {}
    for (const [key, f] of Object.entries(shape)) {
      if (!Object.hasOwn(input, key) || input[key] === null) {
        if (f.required) {
          issues.add([...path, key], 'is required')
          ok = false
        } else if (f.default !== undefined) out[key] = f.default
        continue
      }
      const r = f.check(input[key], [...path, key], issues)
      if (r === undefined) ok = false
      else out[key] = r
    }
    return ok ? (out as Parsed<S>) : undefined
  }

/** A mapping from names to values of one shape (e.g. upstreams). */
const recordCheck =
  <T>(item: Check<T>, keyPattern: RegExp, keyWhat: string): Check<Map<string, T>> =>
  (v, path, issues) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      issues.add(path, `expected a mapping of names, got ${typeName(v)}`)
      return undefined
    }
    const out = new Map<string, T>()
    let ok = true
    for (const [key, value] of Object.entries(v as Record<string, unknown>)) {
      if (!keyPattern.test(key)) {
        issues.add([...path, key], `"${key}" is not ${keyWhat}`)
        ok = false
        continue
      }
      const r = item(value, [...path, key], issues)
      if (r === undefined) ok = false
      else out.set(key, r)
    }
    return ok ? out : undefined
  }

/** What a composite check is made of, so the schema can list its own fields (see fieldPaths). */
type SchemaNode =
  | { kind: 'object'; shape: Shape }
  | { kind: 'list'; item: Check<unknown> }
  | { kind: 'record'; item: Check<unknown>; keyPattern: RegExp; keyWhat: string }
const NODES = new WeakMap<object, SchemaNode>()

function described<T>(check: Check<T>, node: SchemaNode): Check<T> {
  NODES.set(check, node)
  return check
}

/** The exported combinators record what they are made of. */
export const list = <T>(item: Check<T>): Check<T[]> =>
  described(listCheck(item), { kind: 'list', item: item as Check<unknown> })

export const obj = <S extends Shape>(shape: S): Check<Parsed<S>> =>
  described(objCheck(shape), { kind: 'object', shape })

export const record = <T>(item: Check<T>, keyPattern: RegExp, keyWhat: string): Check<Map<string, T>> =>
  described(recordCheck(item, keyPattern, keyWhat), {
    kind: 'record',
    item: item as Check<unknown>,
    keyPattern,
    keyWhat,
  })

/**
 * Every field a check accepts, as `a.b`, `list[].c` and `map.<name>.d`: what
 * the README's configuration reference must list.
 */
export function fieldPaths(check: Check<unknown>, prefix = ''): string[] {
  const node = NODES.get(check)
  if (node === undefined) return prefix === '' ? [] : [prefix]
  if (node.kind !== 'object')
    return fieldPaths(node.item, `${prefix}${node.kind === 'list' ? '[]' : '.<name>'}`)
  return Object.entries(node.shape).flatMap(([key, f]) =>
    fieldPaths(f.check, prefix === '' ? key : `${prefix}.${key}`),
  )
}

/**
 * The JSON Schema of what `check` accepts, from what its combinators
 * recorded: objects list their fields (required ones, primitive defaults,
 * no other keys), lists their items, records their name pattern. A check
 * that says nothing about itself accepts anything here; the loader still
 * checks it.
 */
export function toJsonSchema(check: Check<unknown>): JsonSchema {
  const own = JSON_SCHEMAS.get(check)
  if (own !== undefined) return typeof own === 'function' ? own() : own
  const node = NODES.get(check)
  if (node === undefined) return {}
  switch (node.kind) {
    case 'list':
      return { type: 'array', items: toJsonSchema(node.item) }
    case 'record':
      return {
        type: 'object',
        propertyNames: { pattern: node.keyPattern.source, description: node.keyWhat },
        additionalProperties: toJsonSchema(node.item),
      }
    case 'object': {
      const entries = Object.entries(node.shape)
      const required = entries.filter(([, f]) => f.required === true).map(([key]) => key)
      return {
        type: 'object',
        properties: Object.fromEntries(
          entries.map(([key, f]) => [
            key,
            { ...toJsonSchema(f.check), ...(isPrimitive(f.default) ? { default: f.default } : {}) },
          ]),
        ),
        ...(required.length === 0 ? {} : { required }),
        additionalProperties: false,
      }
    }
  }
}

/** Defaults that are also valid input; a converted one (an address, a Map) is not shown. */
function isPrimitive(v: unknown): v is string | number | boolean {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'
}

/** A mapping with exactly one of the given keys. */
export const exactlyOne = <T>(options: Record<string, Check<T>>): Check<T> =>
  withJsonSchema<T>(exactlyOneCheck(options), () => ({
    type: 'object',
    properties: Object.fromEntries(
      Object.entries(options).map(([key, c]) => [key, toJsonSchema(c as Check<unknown>)]),
    ),
    minProperties: 1,
    maxProperties: 1,
    additionalProperties: false,
  }))

const exactlyOneCheck =
  <T>(options: Record<string, Check<T>>): Check<T> =>
  (v, path, issues) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      issues.add(
        path,
        `expected a mapping with one of: ${Object.keys(options).join(', ')}; got ${typeName(v)}`,
      )
      return undefined
    }
    const keys = Object.keys(v as object)
    if (keys.length !== 1 || !Object.hasOwn(options, keys[0] as string)) {
      issues.add(
        path,
        `expected exactly one of: ${Object.keys(options).join(', ')}; got ${keys.join(', ') || 'none'}`,
      )
      return undefined
    }
    const key = keys[0] as string
    return (options[key] as Check<T>)((v as Record<string, unknown>)[key], [...path, key], issues)
  }
