/**
 * Checks a parsed YAML/JSON value against the definitions of the policy
 * format, reporting every problem with its field path (nothing stops at the
 * first issue). Unknown fields are errors: a typo in a deny rule must never
 * be silently ignored.
 */
import type { Path } from '../config/schema.ts'
import type { Def } from './definitions.ts'

export interface Issue {
  readonly path: Path
  readonly message: string
  /** 1-based column inside the field's value (CEL positions), when known. */
  readonly column?: number
}

function typeName(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a mapping'
  return `${typeof v} ${JSON.stringify(v)}`
}

const isMapping = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/** Returns true when `value` conforms; pushes every problem to `issues`. */
export function validate(def: Def, value: unknown, path: Path, issues: Issue[]): boolean {
  switch (def.t) {
    case 'string': {
      if (typeof value !== 'string' || value === '') {
        issues.push({ path, message: `expected a non-empty string, got ${typeName(value)}` })
        return false
      }
      if (def.enum !== undefined && !def.enum.includes(value)) {
        issues.push({ path, message: `expected one of ${def.enum.join(', ')}, got "${value}"` })
        return false
      }
      if (def.pattern !== undefined && !new RegExp(def.pattern).test(value)) {
        issues.push({ path, message: `"${value}" does not match ${def.pattern}` })
        return false
      }
      if (def.maxLength !== undefined && value.length > def.maxLength) {
        issues.push({ path, message: `longer than ${def.maxLength} characters` })
        return false
      }
      return true
    }
    case 'integer':
      if (typeof value !== 'number' || !def.enum.includes(value)) {
        issues.push({ path, message: `expected ${def.enum.join(' or ')}, got ${typeName(value)}` })
        return false
      }
      return true
    case 'list': {
      if (!Array.isArray(value)) {
        issues.push({ path, message: `expected a list, got ${typeName(value)}` })
        return false
      }
      if (def.minItems !== undefined && value.length < def.minItems) {
        issues.push({ path, message: `needs at least ${def.minItems} item${def.minItems === 1 ? '' : 's'}` })
        return false
      }
      let ok = true
      value.forEach((item, i) => {
        if (!validate(def.items, item, [...path, i], issues)) ok = false
      })
      return ok
    }
    case 'object': {
      if (!isMapping(value)) {
        issues.push({ path, message: `expected a mapping, got ${typeName(value)}` })
        return false
      }
      let ok = true
      for (const key of Object.keys(value)) {
        if (!Object.hasOwn(def.fields, key)) {
          issues.push({
            path: [...path, key],
            message: `unknown field (expected one of: ${Object.keys(def.fields).join(', ')})`,
          })
          ok = false
        }
      }
      for (const [key, f] of Object.entries(def.fields)) {
        if (!Object.hasOwn(value, key) || value[key] === null) {
          if (f.required) {
            issues.push({ path: [...path, key], message: 'is required' })
            ok = false
          }
          continue
        }
        if (!validate(f.def, value[key], [...path, key], issues)) ok = false
      }
      return ok
    }
    case 'exactlyOne': {
      const keys = isMapping(value) ? Object.keys(value) : []
      const names = Object.keys(def.fields)
      if (!isMapping(value) || keys.length !== 1 || !Object.hasOwn(def.fields, keys[0] as string)) {
        issues.push({
          path,
          message: `expected a mapping with exactly one of: ${names.join(', ')}; got ${
            isMapping(value) ? keys.join(', ') || 'none' : typeName(value)
          }`,
        })
        return false
      }
      const key = keys[0] as string
      return validate((def.fields[key] as { def: Def }).def, value[key], [...path, key], issues)
    }
    case 'stringOrObject':
      return typeof value === 'string'
        ? validate(def.string, value, path, issues)
        : validate(def.object, value, path, issues)
    case 'tagged': {
      if (!isMapping(value)) {
        issues.push({ path, message: `expected a mapping, got ${typeName(value)}` })
        return false
      }
      const tag = value[def.tag]
      const variant =
        typeof tag === 'string' && Object.hasOwn(def.variants, tag) ? def.variants[tag] : undefined
      if (variant === undefined) {
        issues.push({
          path: [...path, def.tag],
          message:
            tag === undefined
              ? `is required (one of ${Object.keys(def.variants).join(', ')})`
              : `expected one of ${Object.keys(def.variants).join(', ')}, got ${typeName(tag)}`,
        })
        return false
      }
      return validate(variant, value, path, issues)
    }
  }
}
