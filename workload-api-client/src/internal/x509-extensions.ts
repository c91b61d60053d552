/**
 * The X.509 extensions SVID rules depend on, read from DER. Node exposes
 * neither the KeyUsage bits nor basic constraints' raw form, and its
 * `subjectAltName` string may quote entries (CVE-2021-44532), so the
 * certificate is walked here instead: TBSCertificate → [3] extensions.
 */
import {
  children,
  contentEquals,
  DerError,
  expectTlv,
  oidToString,
  readBoolean,
  readSmallUint,
  readTlv,
  TAG_BIT_STRING,
  TAG_BOOLEAN,
  TAG_OCTET_STRING,
  TAG_OID,
  TAG_SEQUENCE,
  type Tlv,
} from './der.ts'
import { type NameConstraints, readNameConstraints } from './name-constraints.ts'

export interface KeyUsage {
  digitalSignature: boolean
  nonRepudiation: boolean
  keyEncipherment: boolean
  dataEncipherment: boolean
  keyAgreement: boolean
  keyCertSign: boolean
  cRLSign: boolean
  encipherOnly: boolean
  decipherOnly: boolean
}

export interface X509Extensions {
  /** Every URI SAN, in order. A valid SVID leaf has exactly one. */
  readonly uriSans: readonly string[]
  readonly dnsNames: readonly string[]
  /** iPAddress SANs as raw 4- or 16-byte addresses. */
  readonly ipSans: readonly Uint8Array[]
  readonly sanCritical: boolean
  /** basicConstraints cA; false when the extension is absent. */
  readonly isCa: boolean
  readonly pathLenConstraint: number | undefined
  /** undefined when the certificate has no KeyUsage extension. */
  readonly keyUsage: Readonly<KeyUsage> | undefined
  readonly keyUsageCritical: boolean
  /** Dotted EKU OIDs, or undefined when the extension is absent. */
  readonly extKeyUsage: readonly string[] | undefined
  /** Critical extensions this library does not process (dotted OIDs). RFC 5280 §4.2: such certificates are rejected. */
  readonly unknownCritical: readonly string[]
  /** RFC 5280 §4.2.1.10 nameConstraints, critical or not; undefined when absent. */
  readonly nameConstraints: NameConstraints | undefined
  /** An empty subject makes the SAN extension mandatory and critical (RFC 5280 §4.2.1.6). */
  readonly subjectEmpty: boolean
  /** The issuer and subject Names as DER, one byte per char, for exact name chaining. */
  readonly issuerName: string
  readonly subjectName: string
}

export const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'

// Extension OIDs as their DER content bytes, compared without decoding.
const OID_SUBJECT_KEY_ID = Uint8Array.of(0x55, 0x1d, 0x0e)
const OID_KEY_USAGE = Uint8Array.of(0x55, 0x1d, 0x0f)
const OID_SAN = Uint8Array.of(0x55, 0x1d, 0x11)
const OID_BASIC_CONSTRAINTS = Uint8Array.of(0x55, 0x1d, 0x13)
const OID_AUTHORITY_KEY_ID = Uint8Array.of(0x55, 0x1d, 0x23)
const OID_EXT_KEY_USAGE = Uint8Array.of(0x55, 0x1d, 0x25)
const OID_NAME_CONSTRAINTS = Uint8Array.of(0x55, 0x1d, 0x1e)

const GN_DNS = 0x82 // [2] IMPLICIT IA5String
const GN_URI = 0x86 // [6] IMPLICIT IA5String
const GN_IP = 0x87 // [7] IMPLICIT OCTET STRING

const latin1 = new TextDecoder('latin1')

/** Parses the extensions of a DER certificate. Throws DerError on malformed input. */
export function parseX509Extensions(certDer: Uint8Array): X509Extensions {
  const cert = expectTlv(certDer, 0, certDer.length, TAG_SEQUENCE, 'Certificate')
  if (cert.end !== certDer.length) throw new DerError('TRAILING_DATA', 'bytes after the certificate')
  const tbs = expectTlv(certDer, cert.start, cert.end, TAG_SEQUENCE, 'TBSCertificate')
  const fields = children(certDer, tbs)
  // version [0] is optional; without it the subject is the 5th field, not the 6th.
  const base = fields[0]?.tag === 0xa0 ? 1 : 0
  const issuer = fields[base + 2]
  const subject = fields[base + 4]
  if (issuer?.tag !== TAG_SEQUENCE || subject?.tag !== TAG_SEQUENCE) {
    throw new DerError('BAD_TBS', 'TBSCertificate has no issuer or subject')
  }
  const out = {
    uriSans: [] as string[],
    dnsNames: [] as string[],
    ipSans: [] as Uint8Array[],
    sanCritical: false,
    isCa: false,
    pathLenConstraint: undefined as number | undefined,
    keyUsage: undefined as KeyUsage | undefined,
    keyUsageCritical: false,
    extKeyUsage: undefined as string[] | undefined,
    unknownCritical: [] as string[],
    nameConstraints: undefined as NameConstraints | undefined,
    subjectEmpty: subject.end === subject.start,
    issuerName: latin1.decode(certDer.subarray(issuer.start, issuer.end)),
    subjectName: latin1.decode(certDer.subarray(subject.start, subject.end)),
  }
  const extWrapper = fields.find((f) => f.tag === 0xa3)
  if (extWrapper === undefined) return out
  const extList = expectTlv(certDer, extWrapper.start, extWrapper.end, TAG_SEQUENCE, 'Extensions')
  const seen = new Set<string>()
  for (const ext of children(certDer, extList)) {
    if (ext.tag !== TAG_SEQUENCE)
      throw new DerError('BAD_EXTENSION', `extension at byte ${ext.start} is not a SEQUENCE`)
    const parts = children(certDer, ext)
    const oid = parts[0]
    if (oid === undefined || oid.tag !== TAG_OID)
      throw new DerError('BAD_EXTENSION', 'extension without an OID')
    let critical = false
    let valueIndex = 1
    if (parts[1]?.tag === TAG_BOOLEAN) {
      critical = readBoolean(certDer, parts[1])
      valueIndex = 2
    }
    const valueTlv = parts[valueIndex]
    if (valueTlv === undefined || valueTlv.tag !== TAG_OCTET_STRING || parts.length !== valueIndex + 1) {
      throw new DerError('BAD_EXTENSION', `extension ${oidToString(certDer, oid)} is malformed`)
    }
    const oidString = oidToString(certDer, oid)
    if (seen.has(oidString)) {
      throw new DerError('DUPLICATE_EXTENSION', `extension ${oidString} appears twice (RFC 5280 §4.2)`)
    }
    seen.add(oidString)
    if (contentEquals(certDer, oid, OID_SAN)) {
      out.sanCritical = critical
      readGeneralNames(certDer, valueTlv, out.uriSans, out.dnsNames, out.ipSans)
    } else if (contentEquals(certDer, oid, OID_BASIC_CONSTRAINTS)) {
      readBasicConstraints(certDer, valueTlv, out)
    } else if (contentEquals(certDer, oid, OID_KEY_USAGE)) {
      out.keyUsage = readKeyUsage(certDer, valueTlv)
      out.keyUsageCritical = critical
    } else if (contentEquals(certDer, oid, OID_EXT_KEY_USAGE)) {
      out.extKeyUsage = readExtKeyUsage(certDer, valueTlv)
    } else if (contentEquals(certDer, oid, OID_NAME_CONSTRAINTS)) {
      out.nameConstraints = readNameConstraints(certDer, valueTlv)
    } else if (
      critical &&
      !contentEquals(certDer, oid, OID_SUBJECT_KEY_ID) &&
      !contentEquals(certDer, oid, OID_AUTHORITY_KEY_ID)
    ) {
      out.unknownCritical.push(oidString)
    }
  }
  return out
}

function readGeneralNames(
  buf: Uint8Array,
  value: Tlv,
  uris: string[],
  dns: string[],
  ips: Uint8Array[],
): void {
  const names = expectTlv(buf, value.start, value.end, TAG_SEQUENCE, 'GeneralNames')
  if (names.end !== value.end) throw new DerError('BAD_EXTENSION', 'bytes after GeneralNames')
  for (const gn of children(buf, names)) {
    if (gn.tag === GN_IP) {
      if (gn.end - gn.start !== 4 && gn.end - gn.start !== 16) {
        throw new DerError('BAD_SAN', `IP address SAN at byte ${gn.start} is neither 4 nor 16 bytes`)
      }
      ips.push(buf.slice(gn.start, gn.end))
      continue
    }
    if (gn.tag !== GN_URI && gn.tag !== GN_DNS) continue
    // IA5String is 7-bit; anything else would be decoded differently by different parsers.
    for (let i = gn.start; i < gn.end; i++) {
      if ((buf[i] as number) > 0x7f)
        throw new DerError('BAD_SAN', `SAN at byte ${gn.start} is not IA5 (ASCII)`)
    }
    const text = latin1.decode(buf.subarray(gn.start, gn.end))
    if (gn.tag === GN_URI) uris.push(text)
    else dns.push(text)
  }
}

function readBasicConstraints(
  buf: Uint8Array,
  value: Tlv,
  out: { isCa: boolean; pathLenConstraint: number | undefined },
): void {
  const seq = expectTlv(buf, value.start, value.end, TAG_SEQUENCE, 'BasicConstraints')
  const parts = children(buf, seq)
  let i = 0
  if (parts[i]?.tag === TAG_BOOLEAN) out.isCa = readBoolean(buf, parts[i++] as Tlv)
  const pathLen = parts[i]
  if (pathLen !== undefined) {
    out.pathLenConstraint = readSmallUint(buf, pathLen)
    i++
  }
  if (i !== parts.length) throw new DerError('BAD_EXTENSION', 'BasicConstraints has extra fields')
}

// KeyUsage ::= BIT STRING; bit 0 is the most significant bit of the first content byte.
const KU_BITS: readonly (keyof KeyUsage)[] = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
]

function readKeyUsage(buf: Uint8Array, value: Tlv): KeyUsage {
  const bits = readTlv(buf, value.start, value.end)
  if (bits.tag !== TAG_BIT_STRING || bits.end - bits.start < 1 || bits.end !== value.end) {
    throw new DerError('BAD_EXTENSION', 'KeyUsage is not a BIT STRING')
  }
  const unused = buf[bits.start] as number
  if (unused > 7) throw new DerError('BAD_EXTENSION', 'KeyUsage BIT STRING has more than 7 unused bits')
  const ku = {} as KeyUsage
  const nbits = (bits.end - bits.start - 1) * 8 - unused
  for (let bit = 0; bit < KU_BITS.length; bit++) {
    const byte = buf[bits.start + 1 + (bit >> 3)]
    ku[KU_BITS[bit] as keyof KeyUsage] =
      bit < nbits && byte !== undefined && (byte & (0x80 >> (bit & 7))) !== 0
  }
  return ku
}

function readExtKeyUsage(buf: Uint8Array, value: Tlv): string[] {
  const seq = expectTlv(buf, value.start, value.end, TAG_SEQUENCE, 'ExtKeyUsageSyntax')
  return children(buf, seq).map((oid) => {
    if (oid.tag !== TAG_OID) throw new DerError('BAD_EXTENSION', 'ExtKeyUsage holds a non-OID')
    return oidToString(buf, oid)
  })
}
