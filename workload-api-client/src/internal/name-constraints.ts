/**
 * RFC 5280 §4.2.1.10 name constraints, for the CAs of a peer chain. Peer
 * verification does not go through OpenSSL on servers, so this module is what
 * keeps a name-constrained upstream CA (as some UpstreamAuthority setups
 * issue SPIRE's intermediate under) from vouching for names outside its
 * subtrees, whether the extension is marked critical or not (OpenSSL and Go
 * both enforce it either way).
 *
 * Processed name forms: dNSName, uniformResourceIdentifier (its host, which is
 * the trust domain of a SPIFFE ID), iPAddress and directoryName (RDN prefix,
 * compared as DER bytes). Any other form in a constraint is refused rather
 * than ignored: a constraint we cannot evaluate must not widen trust.
 */
import { children, DerError, expectTlv, readTlv, TAG_SEQUENCE, type Tlv } from './der.ts'

export type ConstraintForm = 'dns' | 'uri' | 'ip' | 'dn' | 'unsupported'

export interface GeneralSubtree {
  readonly form: ConstraintForm
  /** dns/uri: the lowercase name; dn: the RDNSequence contents as latin1; ip/unsupported: unused. */
  readonly text: string
  /** ip only: address then mask, 8 or 32 bytes. */
  readonly bytes: Uint8Array
}

export interface NameConstraints {
  readonly permitted: readonly GeneralSubtree[]
  readonly excluded: readonly GeneralSubtree[]
}

/** The names of one certificate that name constraints of the CAs above it apply to. */
export interface ConstrainedNames {
  readonly dnsNames: readonly string[]
  readonly uriSans: readonly string[]
  readonly ipSans: readonly Uint8Array[]
  /** The subject Name contents (latin1); `''` when the subject is empty. */
  readonly subjectName: string
}

const latin1 = new TextDecoder('latin1')

const GN_DNS = 0x82
const GN_URI = 0x86
const GN_IP = 0x87
const GN_DIRECTORY = 0xa4

/** Parses the extension value (the OCTET STRING contents) of id-ce-nameConstraints. */
export function readNameConstraints(buf: Uint8Array, value: Tlv): NameConstraints {
  const seq = expectTlv(buf, value.start, value.end, TAG_SEQUENCE, 'NameConstraints')
  if (seq.end !== value.end) throw new DerError('BAD_EXTENSION', 'bytes after NameConstraints')
  const permitted: GeneralSubtree[] = []
  const excluded: GeneralSubtree[] = []
  let lastTag = 0
  for (const part of children(buf, seq)) {
    if ((part.tag !== 0xa0 && part.tag !== 0xa1) || part.tag <= lastTag) {
      throw new DerError(
        'BAD_EXTENSION',
        'NameConstraints holds something other than [0] permitted, [1] excluded',
      )
    }
    lastTag = part.tag
    const subtrees = children(buf, part)
    // RFC 5280: conforming CAs must not issue an empty GeneralSubtrees.
    if (subtrees.length === 0)
      throw new DerError('BAD_EXTENSION', 'NameConstraints has an empty subtree list')
    for (const st of subtrees) (part.tag === 0xa0 ? permitted : excluded).push(readSubtree(buf, st))
  }
  if (permitted.length === 0 && excluded.length === 0) {
    throw new DerError('BAD_EXTENSION', 'NameConstraints has neither permitted nor excluded subtrees')
  }
  return { permitted, excluded }
}

function readSubtree(buf: Uint8Array, st: Tlv): GeneralSubtree {
  if (st.tag !== TAG_SEQUENCE) throw new DerError('BAD_EXTENSION', 'GeneralSubtree is not a SEQUENCE')
  const parts = children(buf, st)
  const base = parts[0]
  if (base === undefined) throw new DerError('BAD_EXTENSION', 'GeneralSubtree has no base')
  // minimum must be 0 and maximum absent (RFC 5280 §4.2.1.10); some CAs spell out the default minimum
  // ([0] INTEGER 0), which OpenSSL accepts too. Anything else we cannot honour.
  const rest = parts.slice(1)
  const zeroMinimum =
    rest.length === 1 &&
    rest[0]?.tag === 0x80 &&
    rest[0].end - rest[0].start === 1 &&
    buf[rest[0].start] === 0
  if (rest.length > 0 && !zeroMinimum) {
    return { form: 'unsupported', text: 'minimum/maximum', bytes: new Uint8Array(0) }
  }
  const content = buf.subarray(base.start, base.end)
  switch (base.tag) {
    case GN_DNS:
    case GN_URI:
      return { form: base.tag === GN_DNS ? 'dns' : 'uri', text: ascii(content).toLowerCase(), bytes: content }
    case GN_IP:
      if (content.length !== 8 && content.length !== 32) {
        throw new DerError('BAD_EXTENSION', 'iPAddress name constraint is not address + mask')
      }
      return { form: 'ip', text: '', bytes: content }
    case GN_DIRECTORY: {
      const name = readTlv(buf, base.start, base.end)
      if (name.tag !== TAG_SEQUENCE || name.end !== base.end) {
        throw new DerError('BAD_EXTENSION', 'directoryName name constraint is not a Name')
      }
      return { form: 'dn', text: latin1.decode(buf.subarray(name.start, name.end)), bytes: content }
    }
    default:
      return { form: 'unsupported', text: `GeneralName tag 0x${base.tag.toString(16)}`, bytes: content }
  }
}

function ascii(bytes: Uint8Array): string {
  for (const b of bytes) {
    if (b > 0x7f) throw new DerError('BAD_EXTENSION', 'name constraint is not IA5 (ASCII)')
  }
  return latin1.decode(bytes)
}

/**
 * Returns why `names` violate `nc`, or undefined when they satisfy it. For each
 * form, every name of that form must lie in a permitted subtree of that form
 * (when the CA lists any) and in no excluded subtree.
 */
export function nameConstraintViolation(nc: NameConstraints, names: ConstrainedNames): string | undefined {
  const all = [...nc.permitted, ...nc.excluded]
  const unsupported = all.find((s) => s.form === 'unsupported')
  if (unsupported !== undefined) return `a name constraint of an unsupported form (${unsupported.text})`
  const check = (form: ConstraintForm, values: readonly string[] | readonly Uint8Array[], what: string) => {
    const permitted = nc.permitted.filter((s) => s.form === form)
    const excluded = nc.excluded.filter((s) => s.form === form)
    for (const v of values) {
      const shown = typeof v === 'string' ? JSON.stringify(v) : 'an IP address'
      if (excluded.some((s) => matches(s, v))) return `${what} ${shown} is in an excluded subtree`
      if (permitted.length > 0 && !permitted.some((s) => matches(s, v))) {
        return `${what} ${shown} is outside the permitted subtrees`
      }
    }
    return undefined
  }
  return (
    check('dns', names.dnsNames, 'DNS name') ??
    check('uri', names.uriSans, 'URI') ??
    check('ip', names.ipSans, 'IP address') ??
    check('dn', names.subjectName === '' ? [] : [names.subjectName], 'subject name')
  )
}

function matches(s: GeneralSubtree, v: string | Uint8Array): boolean {
  if (s.form === 'ip') return typeof v !== 'string' && ipMatches(s.bytes, v)
  if (typeof v !== 'string') return false
  if (s.form === 'dn') return v.startsWith(s.text)
  if (s.form === 'dns') return dnsMatches(s.text, v.toLowerCase())
  const host = uriHost(v)
  return host !== undefined && uriHostMatches(s.text, host)
}

// dNSName: the constraint plus zero or more labels on the left; a leading "." means subdomains only.
function dnsMatches(constraint: string, name: string): boolean {
  if (constraint === '') return true
  if (constraint.startsWith('.')) return name.endsWith(constraint)
  return name === constraint || name.endsWith(`.${constraint}`)
}

// URI: the host alone; "host" is that exact host, ".domain" any host below it (RFC 5280 §4.2.1.10).
function uriHostMatches(constraint: string, host: string): boolean {
  if (constraint.startsWith('.')) return host.endsWith(constraint) && host.length > constraint.length
  return host === constraint
}

/** The lowercase host of an absolute URI with an authority, or undefined (then no URI constraint can match). */
function uriHost(uri: string): string | undefined {
  const sep = uri.indexOf('://')
  if (sep <= 0) return undefined
  let authority = uri.slice(sep + 3)
  const end = authority.search(/[/?#]/)
  if (end !== -1) authority = authority.slice(0, end)
  const at = authority.lastIndexOf('@')
  if (at !== -1) authority = authority.slice(at + 1)
  // An IP literal is not a host name that a URI constraint can name (RFC 5280 §4.2.1.10).
  if (authority.startsWith('[')) return undefined
  const colon = authority.indexOf(':')
  const host = (colon === -1 ? authority : authority.slice(0, colon)).toLowerCase()
  if (host === '' || /^[0-9.]+$/.test(host)) return undefined
  return host
}

function ipMatches(constraint: Uint8Array, ip: Uint8Array): boolean {
  const n = constraint.length / 2
  if (ip.length !== n) return false
  for (let i = 0; i < n; i++) {
    const mask = constraint[n + i] as number
    if (((ip[i] as number) & mask) !== ((constraint[i] as number) & mask)) return false
  }
  return true
}
