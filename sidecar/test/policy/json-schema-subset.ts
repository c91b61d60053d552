/**
 * A JSON Schema validator for the keywords the policy schema uses (type,
 * enum, pattern, min/maxLength, properties, required, additionalProperties,
 * min/maxProperties, items, minItems, oneOf): enough to check example files
 * against the published schema without a validator dependency. Returns the
 * failures as "path: problem"; empty means valid.
 */
type Schema = Record<string, unknown>

function typeOk(type: string, v: unknown): boolean {
  switch (type) {
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v)
    case 'array':
      return Array.isArray(v)
    case 'integer':
      return Number.isInteger(v)
    case 'string':
      return typeof v === 'string'
    default:
      throw new Error(`json-schema-subset: unsupported type ${type}`)
  }
}

const KNOWN = new Set([
  '$schema',
  '$id',
  'title',
  'description',
  'type',
  'enum',
  'pattern',
  'minLength',
  'maxLength',
  'properties',
  'required',
  'additionalProperties',
  'minProperties',
  'maxProperties',
  'items',
  'minItems',
  'oneOf',
])

export function validateJsonSchema(s: Schema, v: unknown, at = '$'): string[] {
  for (const k of Object.keys(s))
    if (!KNOWN.has(k)) throw new Error(`json-schema-subset: unsupported keyword ${k}`)
  const out: string[] = []
  if (typeof s.type === 'string' && !typeOk(s.type, v)) return [`${at}: not ${s.type}`]
  if (Array.isArray(s.enum) && !s.enum.includes(v)) out.push(`${at}: not one of ${s.enum.join(', ')}`)
  if (typeof v === 'string') {
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v))
      out.push(`${at}: does not match ${s.pattern}`)
    if (typeof s.minLength === 'number' && v.length < s.minLength) out.push(`${at}: too short`)
    if (typeof s.maxLength === 'number' && v.length > s.maxLength) out.push(`${at}: too long`)
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) out.push(`${at}: too few items`)
    if (s.items !== undefined) {
      for (let i = 0; i < v.length; i++)
        out.push(...validateJsonSchema(s.items as Schema, v[i], `${at}[${i}]`))
    }
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>
    const props = (s.properties ?? {}) as Record<string, Schema>
    const keys = Object.keys(o)
    if (typeof s.minProperties === 'number' && keys.length < s.minProperties)
      out.push(`${at}: too few properties`)
    if (typeof s.maxProperties === 'number' && keys.length > s.maxProperties)
      out.push(`${at}: too many properties`)
    for (const r of (s.required ?? []) as string[]) if (!Object.hasOwn(o, r)) out.push(`${at}.${r}: required`)
    for (const k of keys) {
      if (Object.hasOwn(props, k)) out.push(...validateJsonSchema(props[k] as Schema, o[k], `${at}.${k}`))
      else if (s.additionalProperties === false) out.push(`${at}.${k}: not allowed`)
    }
  }
  if (Array.isArray(s.oneOf)) {
    const passing = (s.oneOf as Schema[]).filter((o) => validateJsonSchema(o, v, at).length === 0).length
    if (passing !== 1) out.push(`${at}: matches ${passing} of the oneOf options, not exactly one`)
  }
  return out
}
