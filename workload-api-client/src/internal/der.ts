/**
 * A minimal, bounds-checked DER reader: just enough ASN.1 to split the
 * concatenated certificates the Workload API sends and to read the handful of
 * X.509 extensions Node does not expose (KeyUsage bits, basic constraints,
 * URI SANs). DER only: indefinite lengths, non-minimal lengths and high tag
 * numbers are refused rather than tolerated, because anything ambiguous in a
 * certificate is a place where two parsers can disagree.
 */
import { SpiffeError, type SpiffeErrorCode } from '../errors.ts'

export const TAG_BOOLEAN = 0x01
export const TAG_INTEGER = 0x02
export const TAG_BIT_STRING = 0x03
export const TAG_OCTET_STRING = 0x04
export const TAG_OID = 0x06
export const TAG_SEQUENCE = 0x30

/** One decoded TLV: `start`/`end` delimit the contents; the next TLV begins at `end`. */
export interface Tlv {
  readonly tag: number
  readonly start: number
  readonly end: number
}

/** Thrown by the reader; callers rewrap it with the code that fits their input. */
export class DerError extends Error {
  readonly reason: string
  constructor(reason: string, message: string) {
    super(message)
    this.name = 'DerError'
    this.reason = reason
  }
}

/**
 * Reads the TLV at `offset`, which must end at or before `limit`. Lengths
 * beyond 4 bytes cannot occur in anything we accept (the Workload API caps
 * messages far below 4 GiB), so they are refused.
 */
export function readTlv(buf: Uint8Array, offset: number, limit: number = buf.length): Tlv {
  if (offset + 2 > limit) throw new DerError('TRUNCATED', `DER truncated at byte ${offset}`)
  const tag = buf[offset] as number
  if ((tag & 0x1f) === 0x1f) throw new DerError('BAD_TAG', `DER high tag number at byte ${offset}`)
  let len = buf[offset + 1] as number
  let pos = offset + 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0) throw new DerError('BAD_LENGTH', `indefinite length at byte ${offset} is not DER`)
    if (n > 4) throw new DerError('BAD_LENGTH', `length of ${n} bytes at byte ${offset} is too large`)
    if (pos + n > limit) throw new DerError('TRUNCATED', `DER length truncated at byte ${offset}`)
    if (buf[pos] === 0) throw new DerError('BAD_LENGTH', `non-minimal length at byte ${offset}`)
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + (buf[pos + i] as number)
    if (len < 0x80) throw new DerError('BAD_LENGTH', `non-minimal length at byte ${offset}`)
    pos += n
  }
  const end = pos + len
  if (end > limit) {
    throw new DerError(
      'TRUNCATED',
      `DER element at byte ${offset} claims ${len} bytes, only ${limit - pos} left`,
    )
  }
  return { tag, start: pos, end }
}

/** Reads a TLV and requires its tag. */
export function expectTlv(buf: Uint8Array, offset: number, limit: number, tag: number, what: string): Tlv {
  const tlv = readTlv(buf, offset, limit)
  if (tlv.tag !== tag) {
    throw new DerError(
      'UNEXPECTED_TAG',
      `expected ${what} (tag 0x${tag.toString(16)}) at byte ${offset}, found 0x${tlv.tag.toString(16)}`,
    )
  }
  return tlv
}

/** The TLVs directly inside a constructed element. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = []
  let pos = parent.start
  while (pos < parent.end) {
    const tlv = readTlv(buf, pos, parent.end)
    out.push(tlv)
    pos = tlv.end
  }
  return out
}

/** True when the contents of `tlv` equal `bytes` (used to compare OIDs without decoding them). */
export function contentEquals(buf: Uint8Array, tlv: Tlv, bytes: Uint8Array): boolean {
  if (tlv.end - tlv.start !== bytes.length) return false
  for (let i = 0; i < bytes.length; i++) if (buf[tlv.start + i] !== bytes[i]) return false
  return true
}

/** Dotted form of an OID's contents, for messages. */
export function oidToString(buf: Uint8Array, tlv: Tlv): string {
  const parts: number[] = []
  let value = 0
  for (let i = tlv.start; i < tlv.end; i++) {
    const b = buf[i] as number
    value = value * 128 + (b & 0x7f)
    if ((b & 0x80) === 0) {
      if (parts.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2
        parts.push(first, value - first * 40)
      } else {
        parts.push(value)
      }
      value = 0
    }
  }
  return parts.join('.')
}

/** DER BOOLEAN: exactly one byte, 0x00 or 0xFF. */
export function readBoolean(buf: Uint8Array, tlv: Tlv): boolean {
  if (tlv.tag !== TAG_BOOLEAN || tlv.end - tlv.start !== 1) {
    throw new DerError('BAD_BOOLEAN', `malformed BOOLEAN at byte ${tlv.start}`)
  }
  const b = buf[tlv.start]
  if (b === 0x00) return false
  if (b === 0xff) return true
  throw new DerError('BAD_BOOLEAN', `BOOLEAN at byte ${tlv.start} is neither 0x00 nor 0xFF`)
}

/** A small non-negative INTEGER (path length constraints). */
export function readSmallUint(buf: Uint8Array, tlv: Tlv): number {
  const len = tlv.end - tlv.start
  if (tlv.tag !== TAG_INTEGER || len === 0 || len > 4 || ((buf[tlv.start] as number) & 0x80) !== 0) {
    throw new DerError('BAD_INTEGER', `expected a small non-negative INTEGER at byte ${tlv.start}`)
  }
  let v = 0
  for (let i = tlv.start; i < tlv.end; i++) v = v * 256 + (buf[i] as number)
  return v
}

/**
 * Splits certificates concatenated with no separator (the Workload API's
 * `x509_svid` and bundle fields) by their outer SEQUENCE lengths.
 * `new X509Certificate(concatenated)` would silently read only the first.
 */
export function splitDerCertificates(
  der: Uint8Array,
  code: SpiffeErrorCode = 'SPIFFE_SVID_INVALID',
  what = 'certificate chain',
): Buffer[] {
  if (der.length === 0) throw new SpiffeError(code, `${what} is empty`, { reason: 'EMPTY' })
  const out: Buffer[] = []
  let pos = 0
  try {
    while (pos < der.length) {
      const tlv = expectTlv(der, pos, der.length, TAG_SEQUENCE, 'certificate SEQUENCE')
      // A copy: callers keep these past the life of the message buffer.
      out.push(Buffer.from(der.subarray(pos, tlv.end)))
      pos = tlv.end
    }
  } catch (err) {
    if (err instanceof DerError) {
      throw new SpiffeError(code, `${what}: certificate ${out.length + 1}: ${err.message}`, {
        reason: 'BAD_DER',
        cause: err,
      })
    }
    throw err
  }
  return out
}
