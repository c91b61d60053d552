/**
 * SPIFFE bundle documents (SPIFFE_Trust_Domain_and_Bundle.md §4) and bundle
 * maps (§5): the JWK Sets that federation endpoints and `spire-server bundle
 * show -format spiffe` produce, holding a trust domain's X.509 roots and JWT
 * keys side by side.
 *
 * Unlike a Workload API JWKS, every entry here must say what it is for
 * (`use`), and the spec asks consumers to skip, not fail on, entries they do
 * not understand (unknown `kty` or `use`), so that a trust domain can add new
 * key types without breaking older clients. Entries that claim a known use
 * but are broken still fail the whole document.
 */
import { X509Certificate } from 'node:crypto'
import { SpiffeError } from './errors.ts'
import { isJsonObject, type JsonObject, type JsonValue, parseStrictJson } from './internal/strict-json.ts'
import {
  addAuthority,
  importJwtKey,
  type Jwk,
  type JwtAuthority,
  JwtBundle,
  jwtAuthority,
  requireKid,
} from './jwt-bundle.ts'
import { TrustDomain } from './spiffe-id.ts'
import { X509Bundle } from './x509-bundle.ts'

/** Stable reasons carried by SPIFFE_BUNDLE_INVALID for bundle documents and maps. */
export type SpiffeBundleReason =
  | 'MALFORMED'
  | 'MISSING_KEYS'
  | 'BAD_KEY'
  | 'BAD_X5C'
  | 'MISSING_KID'
  | 'DUPLICATE_KID'
  | 'PRIVATE_KEY'
  | 'BAD_SEQUENCE'
  | 'BAD_REFRESH_HINT'
  | 'BAD_TRUST_DOMAIN'
  | 'DUPLICATE_TRUST_DOMAIN'

export const X509_SVID_USE = 'x509-svid'
export const JWT_SVID_USE = 'jwt-svid'

export const MAX_BUNDLE_BYTES = 1024 * 1024
/** A map carries one bundle per federated trust domain. */
export const MAX_BUNDLE_MAP_BYTES = 16 * 1024 * 1024

// Key types whose entries are read. Everything else is skipped (§4.2.1):
// `oct` would be a shared secret, which has no place in a public bundle.
const KNOWN_KTY = new Set(['EC', 'RSA', 'OKP'])
const SEQUENCE_MEMBER = new Set(['spiffe_sequence'])
// RFC 7517 §4.7: x5c entries are standard base64 (with padding), not base64url.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

function invalid(reason: SpiffeBundleReason, message: string, cause?: unknown): SpiffeError {
  return new SpiffeError(
    'SPIFFE_BUNDLE_INVALID',
    message,
    cause === undefined ? { reason } : { reason, cause },
  )
}

export interface SpiffeBundleParts {
  x509?: X509Bundle
  jwt?: JwtBundle
  sequence?: bigint
  refreshHintSeconds?: number
}

/** One trust domain's SPIFFE bundle. Immutable. */
export class SpiffeBundle {
  readonly trustDomain: TrustDomain
  readonly x509: X509Bundle
  readonly jwt: JwtBundle
  /** `spiffe_sequence`, exact at any size. */
  readonly sequence: bigint | undefined
  /** `spiffe_refresh_hint`, in seconds. */
  readonly refreshHintSeconds: number | undefined

  private constructor(
    trustDomain: TrustDomain,
    x509: X509Bundle,
    jwt: JwtBundle,
    sequence: bigint | undefined,
    refreshHintSeconds: number | undefined,
  ) {
    this.trustDomain = trustDomain
    this.x509 = x509
    this.jwt = jwt
    this.sequence = sequence
    this.refreshHintSeconds = refreshHintSeconds
  }

  /**
   * Parses a SPIFFE bundle document for `trustDomain` (the document does not
   * name its trust domain; the caller knows it out of band). `keys: []` is a
   * valid bundle that trusts nothing: the trust domain revoked every key.
   */
  static parse(trustDomain: TrustDomain, json: string | Uint8Array): SpiffeBundle {
    const doc = parseStrictJson(json, {
      errorCode: 'SPIFFE_BUNDLE_INVALID',
      what: `SPIFFE bundle for "${trustDomain.name}"`,
      maxBytes: MAX_BUNDLE_BYTES,
      bigIntMembers: SEQUENCE_MEMBER,
    })
    return bundleFromDocument(trustDomain, doc, true)
  }

  /** Assembles a bundle from its parts; a missing part is an empty one. */
  static from(trustDomain: TrustDomain, parts: SpiffeBundleParts = {}): SpiffeBundle {
    for (const part of [parts.x509, parts.jwt]) {
      if (part !== undefined && part.trustDomain.name !== trustDomain.name) {
        throw new SpiffeError(
          'SPIFFE_ARGUMENT_INVALID',
          `a bundle for "${part.trustDomain.name}" cannot be part of the SPIFFE bundle of "${trustDomain.name}"`,
        )
      }
    }
    if (parts.sequence !== undefined && parts.sequence < 0n) {
      throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', 'spiffe_sequence must not be negative')
    }
    const hint = parts.refreshHintSeconds
    if (hint !== undefined && (!Number.isSafeInteger(hint) || hint < 0)) {
      throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', 'spiffe_refresh_hint must be a non-negative integer')
    }
    return new SpiffeBundle(
      trustDomain,
      parts.x509 ?? X509Bundle.fromAuthorities(trustDomain, []),
      parts.jwt ?? JwtBundle.fromAuthorities(trustDomain, []),
      parts.sequence,
      hint,
    )
  }

  /** True when the bundle holds no usable key at all: every SVID of the trust domain is untrusted. */
  get isEmpty(): boolean {
    return this.x509.authorities.length === 0 && this.jwt.authorities.size === 0
  }

  /** Serializes to a SPIFFE bundle document (JWT keys with `use: "jwt-svid"`, roots as `x5c`). */
  toJson(): string {
    const keys: Jwk[] = []
    for (const cert of this.x509.authorities) keys.push(x509Entry(cert))
    for (const a of this.jwt.authorities.values()) keys.push({ ...a.jwk, use: JWT_SVID_USE })
    // Built by hand because JSON.stringify cannot write a bigint, and the
    // sequence must stay exact above 2^53.
    let out = `{"keys":${JSON.stringify(keys)}`
    if (this.refreshHintSeconds !== undefined) out += `,"spiffe_refresh_hint":${this.refreshHintSeconds}`
    if (this.sequence !== undefined) out += `,"spiffe_sequence":${this.sequence.toString()}`
    return `${out}}`
  }
}

function x509Entry(cert: X509Certificate): Jwk {
  let jwk: Jwk
  try {
    jwk = cert.publicKey.export({ format: 'jwk' })
  } catch {
    // Keys with no JWK form (say RSA-PSS) still travel: x5c is what counts.
    jwk = { kty: cert.publicKey.asymmetricKeyType === 'ec' ? 'EC' : 'RSA' }
  }
  return { ...jwk, use: X509_SVID_USE, x5c: [cert.raw.toString('base64')] }
}

/**
 * Parses a SPIFFE bundle map (§5): `{"trust_domains": {"<td>": <bundle>}}`,
 * or, as some tools write it, the inner object alone. An object with a
 * `trust_domains` member is always read as the first form. Trust domain keys
 * may be bare names or `spiffe://` IDs; two keys naming one trust domain are
 * rejected (§6.3), whether spelled identically or not. Per-bundle refresh
 * hints are dropped: §5.1.1 forbids letting them drive a map's refresh.
 */
export function parseSpiffeBundleMap(json: string | Uint8Array): Map<string, SpiffeBundle> {
  const doc = parseStrictJson(json, {
    errorCode: 'SPIFFE_BUNDLE_INVALID',
    what: 'SPIFFE bundle map',
    maxBytes: MAX_BUNDLE_MAP_BYTES,
    bigIntMembers: SEQUENCE_MEMBER,
  })
  if (!isJsonObject(doc)) throw invalid('MALFORMED', 'SPIFFE bundle map is not a JSON object')
  const entries = Object.hasOwn(doc, 'trust_domains') ? doc.trust_domains : doc
  if (!isJsonObject(entries)) throw invalid('MALFORMED', 'SPIFFE bundle map "trust_domains" is not an object')
  const out = new Map<string, SpiffeBundle>()
  for (const [key, value] of Object.entries(entries)) {
    const td = TrustDomain.tryParse(key)
    if (td === undefined) {
      throw invalid(
        'BAD_TRUST_DOMAIN',
        `SPIFFE bundle map key ${JSON.stringify(key.slice(0, 300))} is not a trust domain`,
      )
    }
    if (out.has(td.name)) {
      throw invalid('DUPLICATE_TRUST_DOMAIN', `SPIFFE bundle map names trust domain "${td.name}" twice`)
    }
    out.set(td.name, bundleFromDocument(td, value, false))
  }
  return out
}

function bundleFromDocument(
  td: TrustDomain,
  doc: JsonValue | undefined,
  keepRefreshHint: boolean,
): SpiffeBundle {
  const what = `SPIFFE bundle for "${td.name}"`
  if (!isJsonObject(doc)) throw invalid('MALFORMED', `${what} is not a JSON object`)
  // §4.1.3: `keys` MUST be present; go-spiffe rejects a document without it.
  if (!Array.isArray(doc.keys)) throw invalid('MISSING_KEYS', `${what} has no "keys" array`)

  const roots: X509Certificate[] = []
  const seenRoots = new Set<string>()
  const authorities = new Map<string, JwtAuthority>()
  doc.keys.forEach((entry: JsonValue, i: number) => {
    const where = `${what}, key ${i}`
    if (!isJsonObject(entry)) throw invalid('BAD_KEY', `${where} is not an object`)
    const kty = entry.kty
    if (typeof kty !== 'string' || kty.length === 0) throw invalid('BAD_KEY', `${where} has no "kty"`)
    if (!KNOWN_KTY.has(kty)) return
    switch (entry.use) {
      case X509_SVID_USE: {
        const cert = x509Authority(entry, where)
        if (cert === undefined) return
        const fingerprint = cert.fingerprint256
        if (!seenRoots.has(fingerprint)) {
          seenRoots.add(fingerprint)
          roots.push(cert)
        }
        return
      }
      case JWT_SVID_USE: {
        const kid = requireKid(entry, where)
        const key = importJwtKey(entry, where)
        // A curve or key type we cannot verify with is "unknown" to us: skip it.
        if (key !== undefined) addAuthority(authorities, jwtAuthority(kid, key), where)
        return
      }
      default:
        // Missing `use`, `wit-svid`, `sig`, ...: not ours to use (§4.2.2).
        return
    }
  })

  return SpiffeBundle.from(td, {
    x509: X509Bundle.fromAuthorities(td, roots),
    jwt: JwtBundle.fromAuthorities(td, authorities.values()),
    ...optionalSequence(doc, what),
    ...(keepRefreshHint ? optionalRefreshHint(doc, what) : {}),
  })
}

/**
 * The root of an `x509-svid` entry: the first `x5c` element, as the spec's
 * "a single certificate" is read by SPIRE (go-spiffe insists on exactly one).
 * An entry without certificates carries nothing to trust and is skipped.
 */
function x509Authority(entry: JsonObject, where: string): X509Certificate | undefined {
  const x5c = entry.x5c
  if (x5c === undefined) return undefined
  if (!Array.isArray(x5c)) throw invalid('BAD_X5C', `${where}: "x5c" is not an array`)
  if (x5c.length === 0) return undefined
  const first = x5c[0]
  if (typeof first !== 'string' || first.length === 0 || !BASE64.test(first)) {
    throw invalid('BAD_X5C', `${where}: "x5c"[0] is not base64`)
  }
  const der = Buffer.from(first, 'base64')
  let cert: X509Certificate
  try {
    cert = new X509Certificate(der)
  } catch (cause) {
    throw invalid('BAD_X5C', `${where}: "x5c"[0] is not a DER certificate`, cause)
  }
  // X509Certificate reads the first certificate and ignores what follows.
  if (cert.raw.length !== der.length) {
    throw invalid('BAD_X5C', `${where}: "x5c"[0] has bytes after the certificate`)
  }
  return cert
}

function optionalSequence(doc: JsonObject, what: string): { sequence?: bigint } {
  if (!Object.hasOwn(doc, 'spiffe_sequence')) return {}
  const seq = doc.spiffe_sequence
  if (typeof seq !== 'bigint' || seq < 0n) {
    throw invalid('BAD_SEQUENCE', `${what}: "spiffe_sequence" is not a non-negative integer`)
  }
  return { sequence: seq }
}

function optionalRefreshHint(doc: JsonObject, what: string): { refreshHintSeconds?: number } {
  if (!Object.hasOwn(doc, 'spiffe_refresh_hint')) return {}
  const hint = doc.spiffe_refresh_hint
  if (typeof hint !== 'number' || !Number.isSafeInteger(hint) || hint < 0) {
    throw invalid(
      'BAD_REFRESH_HINT',
      `${what}: "spiffe_refresh_hint" is not a non-negative integer of seconds`,
    )
  }
  return { refreshHintSeconds: hint }
}
