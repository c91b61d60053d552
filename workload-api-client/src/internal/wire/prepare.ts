/**
 * Checks a message before the generated encoder writes it, and turns the
 * JSON of google.protobuf.Struct fields into what the encoder can carry.
 * The encoder would write a lone UTF-16 surrogate as U+FFFD, a bigint or
 * an undefined member as an empty Value (read back as null), and recurse
 * through a cyclic object until the stack overflows; here each of those
 * is a SPIFFE_ARGUMENT_INVALID with a stable reason, or (bigint, undefined)
 * the value JSON.stringify would give.
 */
import type {
  DescField,
  DescMessage,
  JsonObject as WireJsonObject,
  JsonValue as WireJsonValue,
} from '@bufbuild/protobuf'
import { ScalarType } from '@bufbuild/protobuf'
import { SpiffeError } from '../../errors.ts'
import type { JsonObject, JsonValue } from '../strict-json.ts'
import { MAX_MESSAGE_DEPTH } from './check-wire.ts'

function invalid(reason: 'BAD_STRING' | 'NOT_JSON' | 'TOO_DEEP', message: string): SpiffeError {
  return new SpiffeError('SPIFFE_ARGUMENT_INVALID', message, { reason })
}

function checkString(value: unknown, what: string): void {
  if (typeof value === 'string' && !value.isWellFormed()) {
    // TextEncoder would silently turn a lone surrogate into U+FFFD.
    throw invalid('BAD_STRING', `${what} contains a lone UTF-16 surrogate`)
  }
}

function checkDepth(depth: number, what: string): void {
  // Also stops a cyclic object from recursing until the stack overflows.
  if (depth > MAX_MESSAGE_DEPTH)
    throw invalid('TOO_DEEP', `${what} nests deeper than ${MAX_MESSAGE_DEPTH} levels`)
}

const isStruct = (desc: DescMessage) => desc.typeName === 'google.protobuf.Struct'

/**
 * A copy of the message initializer `init` for `desc`, with every string
 * checked and Struct fields converted to plain JSON. Nothing of `init` is
 * modified.
 */
export function prepareMessage(desc: DescMessage, init: object, depth = 0): Record<string, unknown> {
  checkDepth(depth, desc.typeName)
  if (desc.oneofs.length > 0) {
    // Not needed by the Workload API's messages; a oneof would need its {case, value} shape here.
    throw new Error(`prepareMessage does not support the oneofs of ${desc.typeName}`)
  }
  const source = init as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const field of desc.fields) {
    const value = source[field.localName]
    if (value === undefined) continue
    out[field.localName] = prepareField(field, value, depth)
  }
  return out
}

function prepareField(field: DescField, value: unknown, depth: number): unknown {
  const what = `field ${field.parent.typeName}.${field.name}`
  switch (field.fieldKind) {
    case 'scalar':
      if (field.scalar === ScalarType.STRING) checkString(value, what)
      return value
    case 'enum':
      return value
    case 'message':
      if (isStruct(field.message)) return structToWire(value as JsonObject, depth + 1)
      return prepareMessage(field.message, value as object, depth + 1)
    case 'list': {
      const list = value as readonly unknown[]
      if (field.listKind === 'message') {
        const desc = field.message
        return list.map((m) => prepareMessage(desc, m as object, depth + 1))
      }
      if (field.listKind === 'scalar' && field.scalar === ScalarType.STRING) {
        for (const s of list) checkString(s, what)
      }
      return [...list]
    }
    case 'map': {
      const out: Record<string, unknown> = {}
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        checkString(key, `${what} key`)
        let entry = v
        if (field.mapKind === 'scalar' && field.scalar === ScalarType.STRING) checkString(v, `${what} value`)
        if (field.mapKind === 'message') entry = prepareMessage(field.message, v as object, depth + 1)
        // A "__proto__" key must stay a member, not become the prototype.
        Object.defineProperty(out, key, {
          value: entry,
          enumerable: true,
          writable: true,
          configurable: true,
        })
      }
      return out
    }
  }
}

function structToWire(obj: JsonObject, depth: number): WireJsonObject {
  checkDepth(depth, 'Struct')
  const out: WireJsonObject = {}
  for (const key of Object.keys(obj)) {
    const value = obj[key]
    // As JSON.stringify does: an undefined member is absent, not null.
    if (value === undefined) continue
    checkString(key, 'Struct key')
    Object.defineProperty(out, key, {
      value: valueToWire(value, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    })
  }
  return out
}

function valueToWire(value: JsonValue, depth: number): WireJsonValue {
  checkDepth(depth, 'Struct')
  switch (typeof value) {
    case 'string':
      checkString(value, 'Struct string')
      return value
    case 'number':
    case 'boolean':
      return value
    case 'bigint':
      // Struct numbers are doubles; integers past 2^53 lose precision here, as in any JSON→Struct mapping.
      return Number(value)
    case 'object':
      if (value === null) return null
      if (Array.isArray(value)) return value.map((v) => valueToWire(v, depth + 1))
      return structToWire(value, depth + 1)
    default:
      throw invalid('NOT_JSON', `a ${typeof value} cannot be encoded as a google.protobuf.Value`)
  }
}
