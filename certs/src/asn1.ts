/**
 * DER building blocks for certificates, on node-forge's ASN.1 encoder.
 *
 * node-forge's certificate API (`forge.pki`) handles RSA only and throws
 * "OID is not RSA" on the EC keys SPIRE issues by default, so it is not used.
 * Its ASN.1 layer is key-agnostic and lets the dev CA write any structure,
 * including the malformed ones tests need; keys and signatures come from
 * node:crypto, which handles EC and RSA alike.
 */
import forge from 'node-forge'

type Node = forge.asn1.Asn1

const { asn1, util } = forge
const UNIVERSAL = 0x00
const CONTEXT = 0x80
const T = {
  BOOLEAN: 1,
  INTEGER: 2,
  BITSTRING: 3,
  OCTETSTRING: 4,
  NULL: 5,
  OID: 6,
  UTF8: 12,
  SEQUENCE: 16,
  SET: 17,
  PRINTABLESTRING: 19,
  IA5STRING: 22,
  UTCTIME: 23,
  GENERALIZEDTIME: 24,
} as const

const bin = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('binary')

export const seq = (items: Node[]): Node => asn1.create(UNIVERSAL, T.SEQUENCE, true, items)
export const set = (items: Node[]): Node => asn1.create(UNIVERSAL, T.SET, true, items)
export const oid = (dotted: string): Node =>
  asn1.create(UNIVERSAL, T.OID, false, asn1.oidToDer(dotted).getBytes())
export const bool = (v: boolean): Node => asn1.create(UNIVERSAL, T.BOOLEAN, false, v ? '\xff' : '\x00')
export const nul = (): Node => asn1.create(UNIVERSAL, T.NULL, false, '')
export const octets = (b: Uint8Array): Node => asn1.create(UNIVERSAL, T.OCTETSTRING, false, bin(b))
export const utf8 = (s: string): Node => asn1.create(UNIVERSAL, T.UTF8, false, util.encodeUtf8(s))
export const printable = (s: string): Node => asn1.create(UNIVERSAL, T.PRINTABLESTRING, false, s)

/** A non-negative INTEGER from big-endian magnitude bytes (minimal, with a 0x00 pad if the top bit is set). */
export function uint(bytes: Uint8Array): Node {
  let i = 0
  while (i < bytes.length - 1 && bytes[i] === 0) i++
  const trimmed = bytes.subarray(i)
  const padded = (trimmed[0] as number) & 0x80 ? Buffer.concat([Buffer.of(0), trimmed]) : trimmed
  return asn1.create(UNIVERSAL, T.INTEGER, false, bin(padded))
}

export function smallInt(n: number): Node {
  return asn1.create(UNIVERSAL, T.INTEGER, false, asn1.integerToDer(n).getBytes())
}

/** BIT STRING holding `bytes` with `unused` trailing bits. */
export function bits(bytes: Uint8Array, unused = 0): Node {
  return asn1.create(UNIVERSAL, T.BITSTRING, false, String.fromCharCode(unused) + bin(bytes))
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
export function time(d: Date): Node {
  return d.getUTCFullYear() < 2050
    ? asn1.create(UNIVERSAL, T.UTCTIME, false, asn1.dateToUtcTime(d))
    : asn1.create(UNIVERSAL, T.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d))
}

/** `[n] EXPLICIT` wrapper. */
export const explicit = (n: number, inner: Node): Node => asn1.create(CONTEXT, n, true, [inner])
/** `[n] IMPLICIT` primitive with raw contents (GeneralName choices). */
export const implicitIa5 = (n: number, s: string): Node => asn1.create(CONTEXT, n, false, s)

/** A node whose DER is already known (SubjectPublicKeyInfo from node:crypto). */
export function fromDer(der: Uint8Array): Node {
  // The typings predate fromDer's options object; decodeBitStrings off keeps BIT STRINGs opaque.
  const parse = asn1.fromDer as unknown as (bytes: forge.util.ByteBuffer, options: object) => Node
  return parse(util.createBuffer(bin(der)), { decodeBitStrings: false })
}

/** A SEQUENCE around already-encoded elements. */
export function derSequence(parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts)
  const n = body.length
  let header: Buffer
  if (n < 0x80) header = Buffer.of(0x30, n)
  else if (n < 0x100) header = Buffer.of(0x30, 0x81, n)
  else if (n < 0x10000) header = Buffer.of(0x30, 0x82, n >> 8, n & 0xff)
  else header = Buffer.of(0x30, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff)
  return Buffer.concat([header, body])
}

export function toDer(node: Node): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), 'binary')
}

export type { Node as Asn1Node }
