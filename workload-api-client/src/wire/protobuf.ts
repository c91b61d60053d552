/**
 * A minimal protobuf (proto3) reader and writer, just enough for the Workload
 * API messages. Hand-written so the library needs no code generator and no
 * runtime schema loading, and so malformed input always surfaces as a
 * SpiffeError with a stable reason instead of whatever a generic decoder throws.
 *
 * The reader works on one buffer with a cursor and never allocates per byte;
 * nested messages are read through a bounded sub-reader over the same bytes.
 */
import { SpiffeError } from '../errors.ts'

export const WIRE_VARINT = 0
export const WIRE_FIXED64 = 1
export const WIRE_LEN = 2
export const WIRE_FIXED32 = 5

/** Stable reasons carried by SPIFFE_WLAPI_MALFORMED_RESPONSE. */
export type WireReason =
  | 'TRUNCATED'
  | 'BAD_WIRE_TYPE'
  | 'BAD_FIELD_NUMBER'
  | 'BAD_UTF8'
  | 'VARINT_TOO_LONG'
  | 'TOO_DEEP'

/** protobuf's field numbers are 29 bits wide; 0 is reserved. */
const MAX_FIELD_NUMBER = 0x1fffffff

export function malformed(reason: WireReason, message: string): SpiffeError {
  return new SpiffeError('SPIFFE_WLAPI_MALFORMED_RESPONSE', message, { reason })
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const UTF8_ENCODER = new TextEncoder()

export class ProtoReader {
  readonly buf: Uint8Array
  pos: number
  readonly end: number
  /** Wire type of the tag read last by `tag()`. */
  wireType = 0

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = buf
    this.pos = pos
    this.end = end
  }

  get done(): boolean {
    return this.pos >= this.end
  }

  /**
   * Reads a varint as a number. Exact up to 2^53; larger values (legal on the
   * wire for uint64) come back rounded, which is harmless because every
   * varint this codec interprets is a tag, a length, a bool or an enum.
   */
  varint(): number {
    const buf = this.buf
    let pos = this.pos
    let result = 0
    let scale = 1
    for (let i = 0; i < 10; i++) {
      if (pos >= this.end)
        throw malformed('TRUNCATED', `varint runs past the end of the message at offset ${pos}`)
      const b = buf[pos++] as number
      // The tenth byte may only carry the 64th bit.
      if (i === 9 && b > 1) break
      result += (b & 0x7f) * scale
      if (b < 0x80) {
        this.pos = pos
        return result
      }
      scale *= 128
    }
    throw malformed('VARINT_TOO_LONG', `varint at offset ${this.pos} is longer than 64 bits`)
  }

  /** Reads a tag; returns the field number and leaves the wire type in `wireType`. */
  tag(): number {
    const at = this.pos
    const tag = this.varint()
    const field = Math.floor(tag / 8)
    const wireType = tag % 8
    if (field === 0 || field > MAX_FIELD_NUMBER) {
      throw malformed(
        'BAD_FIELD_NUMBER',
        `field number ${field} at offset ${at} is outside 1..${MAX_FIELD_NUMBER}`,
      )
    }
    if (
      wireType !== WIRE_VARINT &&
      wireType !== WIRE_FIXED64 &&
      wireType !== WIRE_LEN &&
      wireType !== WIRE_FIXED32
    ) {
      // 3 and 4 are the deprecated groups; 6 and 7 are undefined.
      throw malformed('BAD_WIRE_TYPE', `field ${field} at offset ${at} has unsupported wire type ${wireType}`)
    }
    this.wireType = wireType
    return field
  }

  bool(): boolean {
    return this.varint() !== 0
  }

  double(): number {
    const pos = this.pos
    if (this.end - pos < 8)
      throw malformed('TRUNCATED', `double at offset ${pos} runs past the end of the message`)
    const buf = this.buf
    const value = new DataView(buf.buffer, buf.byteOffset + pos, 8).getFloat64(0, true)
    this.pos = pos + 8
    return value
  }

  /** Reads a length prefix and returns the end offset of the payload it announces. */
  lengthEnd(): number {
    const at = this.pos
    const len = this.varint()
    if (len > this.end - this.pos) {
      throw malformed('TRUNCATED', `length ${len} at offset ${at} runs past the end of the message`)
    }
    return this.pos + len
  }

  /** A copy, so holding a field never pins the whole received frame. */
  bytes(): Uint8Array {
    const end = this.lengthEnd()
    const out = this.buf.slice(this.pos, end)
    this.pos = end
    return out
  }

  string(): string {
    const end = this.lengthEnd()
    const start = this.pos
    this.pos = end
    if (start === end) return ''
    try {
      return UTF8.decode(this.buf.subarray(start, end))
    } catch {
      throw malformed('BAD_UTF8', `string at offset ${start} is not valid UTF-8`)
    }
  }

  /** A reader over the next length-delimited payload; advances past it. */
  sub(): ProtoReader {
    const end = this.lengthEnd()
    const reader = new ProtoReader(this.buf, this.pos, end)
    this.pos = end
    return reader
  }

  /** Skips the value of a field whose tag was just read. */
  skip(): void {
    switch (this.wireType) {
      case WIRE_VARINT:
        this.varint()
        return
      case WIRE_FIXED64:
        this.fixed(8)
        return
      case WIRE_LEN:
        this.pos = this.lengthEnd()
        return
      default:
        this.fixed(4)
    }
  }

  private fixed(n: number): void {
    if (this.end - this.pos < n) {
      throw malformed('TRUNCATED', `${n}-byte field at offset ${this.pos} runs past the end of the message`)
    }
    this.pos += n
  }
}

/**
 * Appends protobuf fields to a growing buffer. Nested messages are written in
 * place after a reserved length slot and shifted down once their size is
 * known, so output is canonical (minimal length prefixes) in one pass.
 */
export class ProtoWriter {
  private buf: Uint8Array
  private pos = 0

  constructor(initialSize = 256) {
    this.buf = new Uint8Array(initialSize)
  }

  private ensure(n: number): void {
    const need = this.pos + n
    if (need <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < need) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
  }

  varint(value: number): void {
    this.ensure(10)
    const buf = this.buf
    let pos = this.pos
    let v = value
    while (v >= 0x80) {
      buf[pos++] = (v % 128) | 0x80
      v = Math.floor(v / 128)
    }
    buf[pos++] = v
    this.pos = pos
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType)
  }

  boolField(field: number, value: boolean): void {
    this.tag(field, WIRE_VARINT)
    this.varint(value ? 1 : 0)
  }

  varintField(field: number, value: number): void {
    this.tag(field, WIRE_VARINT)
    this.varint(value)
  }

  doubleField(field: number, value: number): void {
    this.tag(field, WIRE_FIXED64)
    this.ensure(8)
    new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).setFloat64(0, value, true)
    this.pos += 8
  }

  bytesField(field: number, value: Uint8Array): void {
    this.tag(field, WIRE_LEN)
    this.varint(value.length)
    this.ensure(value.length)
    this.buf.set(value, this.pos)
    this.pos += value.length
  }

  stringField(field: number, value: string): void {
    if (!value.isWellFormed()) {
      // TextEncoder would silently turn a lone surrogate into U+FFFD.
      throw new SpiffeError(
        'SPIFFE_ARGUMENT_INVALID',
        `string for field ${field} contains a lone UTF-16 surrogate`,
        {
          reason: 'BAD_STRING',
        },
      )
    }
    this.tag(field, WIRE_LEN)
    const len = Buffer.byteLength(value, 'utf8')
    this.varint(len)
    this.ensure(len)
    UTF8_ENCODER.encodeInto(value, this.buf.subarray(this.pos, this.pos + len))
    this.pos += len
  }

  /** Starts a nested message in `field`; pass the result to `end()`. */
  begin(field: number): number {
    this.tag(field, WIRE_LEN)
    // A 5-byte varint covers any length a Uint8Array can hold here.
    this.ensure(5)
    this.pos += 5
    return this.pos
  }

  end(start: number): void {
    const len = this.pos - start
    const slot = start - 5
    let lenBytes = 1
    for (let v = len; v >= 0x80; v = Math.floor(v / 128)) lenBytes++
    if (lenBytes < 5) this.buf.copyWithin(slot + lenBytes, start, this.pos)
    const body = this.pos
    this.pos = slot
    this.varint(len)
    this.pos = body - (5 - lenBytes)
  }

  /** The bytes written so far, trimmed to size. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos)
  }
}
