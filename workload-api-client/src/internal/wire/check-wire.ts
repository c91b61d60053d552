/**
 * A strict walk over a protobuf message before the generated decoder reads
 * it, driven by the same descriptors. protoc-gen-es's runtime decodes a known
 * field by its declared type whatever wire type arrives, skips groups, and
 * reports failures as plain Errors; this walk refuses those cases first and
 * names each with a stable reason, so a malformed Workload API message is
 * always a SpiffeError the caller can branch on.
 *
 * Unknown fields are skipped (proto3); a known field with another wire type
 * than its declaration is refused (`BAD_WIRE_TYPE`) rather than misread.
 */
import { type DescField, type DescMessage, ScalarType } from '@bufbuild/protobuf'
import { SpiffeError } from '../../errors.ts'

/** Stable reasons carried by SPIFFE_WLAPI_MALFORMED_RESPONSE for wire-level faults. */
export type WireReason =
  | 'TRUNCATED'
  | 'BAD_WIRE_TYPE'
  | 'BAD_FIELD_NUMBER'
  | 'BAD_UTF8'
  | 'VARINT_TOO_LONG'
  | 'TOO_DEEP'

/** Message nesting limit, protobuf C++'s default recursion limit (and protobuf-es's). */
export const MAX_MESSAGE_DEPTH = 100

const WIRE_VARINT = 0
const WIRE_FIXED64 = 1
const WIRE_LEN = 2
const WIRE_FIXED32 = 5
/** protobuf's field numbers are 29 bits wide; 0 is reserved. */
const MAX_FIELD_NUMBER = 0x1fffffff

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export function malformed(reason: WireReason, message: string): SpiffeError {
  return new SpiffeError('SPIFFE_WLAPI_MALFORMED_RESPONSE', message, { reason })
}

/** Throws SPIFFE_WLAPI_MALFORMED_RESPONSE when `bytes` is not a well-formed `desc` message. */
export function checkWire(desc: DescMessage, bytes: Uint8Array): void {
  walkMessage(desc, bytes, 0, bytes.length, 1)
}

function walkMessage(desc: DescMessage, buf: Uint8Array, start: number, end: number, depth: number): void {
  if (depth > MAX_MESSAGE_DEPTH) {
    throw malformed('TOO_DEEP', `${desc.typeName} nests deeper than ${MAX_MESSAGE_DEPTH} messages`)
  }
  let pos = start
  while (pos < end) {
    const at = pos
    const [tag, afterTag] = readVarint(buf, pos, end)
    pos = afterTag
    const number = Math.floor(tag / 8)
    const wireType = tag % 8
    if (number === 0 || number > MAX_FIELD_NUMBER) {
      throw malformed(
        'BAD_FIELD_NUMBER',
        `${desc.typeName}: field number ${number} at offset ${at} is outside 1..${MAX_FIELD_NUMBER}`,
      )
    }
    if (
      wireType !== WIRE_VARINT &&
      wireType !== WIRE_FIXED64 &&
      wireType !== WIRE_LEN &&
      wireType !== WIRE_FIXED32
    ) {
      // 3 and 4 are the deprecated groups; 6 and 7 are undefined.
      throw malformed(
        'BAD_WIRE_TYPE',
        `${desc.typeName}: field ${number} at offset ${at} has unsupported wire type ${wireType}`,
      )
    }
    const field = desc.fields.find((f) => f.number === number)
    const valueEnd = skipValue(buf, pos, end, wireType)
    if (field !== undefined) {
      if (!wireTypeFits(field, wireType)) {
        throw malformed(
          'BAD_WIRE_TYPE',
          `${desc.typeName}: field ${field.name} at offset ${at} arrives with wire type ${wireType}`,
        )
      }
      if (wireType === WIRE_LEN) walkLengthDelimited(field, buf, valueEnd.payload, valueEnd.next, depth)
    }
    pos = valueEnd.next
  }
}

function walkLengthDelimited(
  field: DescField,
  buf: Uint8Array,
  start: number,
  end: number,
  depth: number,
): void {
  switch (field.fieldKind) {
    case 'scalar':
      if (field.scalar === ScalarType.STRING) checkUtf8(buf, start, end, field.name)
      return
    case 'list':
      if (field.listKind === 'message') walkMessage(field.message, buf, start, end, depth + 1)
      else if (field.listKind === 'scalar' && field.scalar === ScalarType.STRING)
        checkUtf8(buf, start, end, field.name)
      else if (field.listKind !== 'scalar' || field.scalar !== ScalarType.BYTES)
        walkPacked(field, buf, start, end)
      return
    case 'message':
      walkMessage(field.message, buf, start, end, depth + 1)
      return
    case 'map':
      walkMapEntry(field, buf, start, end, depth)
      return
    case 'enum':
      return
  }
}

function walkMapEntry(
  field: DescField & { fieldKind: 'map' },
  buf: Uint8Array,
  start: number,
  end: number,
  depth: number,
): void {
  let pos = start
  while (pos < end) {
    const at = pos
    const [tag, afterTag] = readVarint(buf, pos, end)
    const number = Math.floor(tag / 8)
    const wireType = tag % 8
    const value = skipValue(buf, afterTag, end, wireType)
    const expected =
      number === 1
        ? scalarWireType(field.mapKey)
        : number === 2
          ? field.mapKind === 'scalar'
            ? scalarWireType(field.scalar)
            : field.mapKind === 'enum'
              ? WIRE_VARINT
              : WIRE_LEN
          : wireType
    if (wireType !== expected) {
      throw malformed(
        'BAD_WIRE_TYPE',
        `map ${field.name}: entry field ${number} at offset ${at} arrives with wire type ${wireType}`,
      )
    }
    if (number === 1 && field.mapKey === ScalarType.STRING)
      checkUtf8(buf, value.payload, value.next, `${field.name} key`)
    if (number === 2 && field.mapKind === 'scalar' && field.scalar === ScalarType.STRING)
      checkUtf8(buf, value.payload, value.next, `${field.name} value`)
    if (number === 2 && field.mapKind === 'message')
      walkMessage(field.message, buf, value.payload, value.next, depth + 1)
    pos = value.next
  }
}

/** A packed repeated numeric field: a run of values of the scalar's own wire type. */
function walkPacked(field: DescField, buf: Uint8Array, start: number, end: number): void {
  const inner =
    field.fieldKind === 'list' && field.listKind === 'scalar' ? scalarWireType(field.scalar) : WIRE_VARINT
  let pos = start
  while (pos < end) pos = skipValue(buf, pos, end, inner).next
}

function wireTypeFits(field: DescField, wireType: number): boolean {
  switch (field.fieldKind) {
    case 'scalar':
      return wireType === scalarWireType(field.scalar)
    case 'enum':
      return wireType === WIRE_VARINT
    case 'message':
    case 'map':
      return wireType === WIRE_LEN
    case 'list':
      if (field.listKind === 'message') return wireType === WIRE_LEN
      if (field.listKind === 'enum') return wireType === WIRE_VARINT || wireType === WIRE_LEN
      // Numeric lists may come packed (LEN) or one value per tag.
      return wireType === scalarWireType(field.scalar) || wireType === WIRE_LEN
  }
}

function scalarWireType(scalar: ScalarType): number {
  switch (scalar) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WIRE_LEN
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WIRE_FIXED64
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WIRE_FIXED32
    default:
      return WIRE_VARINT
  }
}

function checkUtf8(buf: Uint8Array, start: number, end: number, what: string): void {
  try {
    UTF8.decode(buf.subarray(start, end))
  } catch {
    throw malformed('BAD_UTF8', `${what}: string at offset ${start} is not valid UTF-8`)
  }
}

/** Reads a varint of up to 64 bits; exact to 2^53, which covers tags and lengths. */
function readVarint(buf: Uint8Array, start: number, end: number): [number, number] {
  let pos = start
  let result = 0
  let scale = 1
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw malformed('TRUNCATED', `varint runs past the end of the message at offset ${pos}`)
    const b = buf[pos++] as number
    // The tenth byte may only carry the 64th bit.
    if (i === 9 && b > 1) break
    result += (b & 0x7f) * scale
    if (b < 0x80) return [result, pos]
    scale *= 128
  }
  throw malformed('VARINT_TOO_LONG', `varint at offset ${start} is longer than 64 bits`)
}

/** Where a value of `wireType` at `pos` ends; for LEN also where its payload starts. */
function skipValue(
  buf: Uint8Array,
  pos: number,
  end: number,
  wireType: number,
): { payload: number; next: number } {
  const fixed = (n: number) => {
    if (end - pos < n) throw malformed('TRUNCATED', `${n}-byte value at offset ${pos} runs past the end`)
    return { payload: pos, next: pos + n }
  }
  switch (wireType) {
    case WIRE_VARINT: {
      const next = readVarint(buf, pos, end)[1]
      return { payload: pos, next }
    }
    case WIRE_FIXED64:
      return fixed(8)
    case WIRE_FIXED32:
      return fixed(4)
    case WIRE_LEN: {
      const [len, payload] = readVarint(buf, pos, end)
      if (len > end - payload) {
        throw malformed('TRUNCATED', `length ${len} at offset ${pos} runs past the end of the message`)
      }
      return { payload, next: payload + len }
    }
    default:
      throw malformed('BAD_WIRE_TYPE', `wire type ${wireType} at offset ${pos} is not supported`)
  }
}
