/**
 * JWT-SVIDs (JWT-SVID.md): parsing and validation to the letter of the spec
 * and of go-spiffe's jwtsvid, which SPIRE-issued tokens are tested against.
 *
 * Validation is on the request path of every JWT-authenticated call, so the
 * one expensive step, the signature check (~75 µs for ES256), is cached per
 * token string and authority object. Everything that can change between two
 * calls with the same token is re-checked every time: the bundle of the
 * subject's trust domain, the key under `kid`, expiry, not-before and
 * audience. A key removed from a bundle therefore stops its tokens at once.
 */
import { constants, type KeyObject, verify } from 'node:crypto'
import { inspect } from 'node:util'
import { SpiffeError } from './errors.ts'
import { isJsonObject, type JsonObject, type JsonValue, parseStrictJson } from './internal/strict-json.ts'
import type { JwtAuthority, JwtBundleSource } from './jwt-bundle.ts'
import { SpiffeId } from './spiffe-id.ts'

/** JWT-SVID.md §3: the only signature algorithms a JWT-SVID may use. */
export const JWT_SVID_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
] as const
export type JwtSvidAlgorithm = (typeof JWT_SVID_ALGORITHMS)[number]

/** go-jose's default clock skew allowance, which go-spiffe and SPIRE validate with. */
export const DEFAULT_JWT_LEEWAY_MS = 60_000
// SPIRE's key IDs are 32 characters; a longer one only bloats error messages.
const MAX_KID_LENGTH = 256
/** Far above any real JWT-SVID (SPIRE's are ~600 bytes) and below what HTTP servers accept in a header. */
export const MAX_JWT_SVID_LENGTH = 16 * 1024

/** Stable reasons carried by SPIFFE_JWT_INVALID. */
export type JwtSvidReason =
  | 'MALFORMED'
  | 'TOO_LARGE'
  | 'TOO_DEEP'
  | 'DUPLICATE_KEY'
  | 'FORBIDDEN_KEY'
  | 'BAD_ALG'
  | 'BAD_TYP'
  | 'MISSING_KID'
  | 'UNSUPPORTED_CRIT'
  | 'MISSING_SUB'
  | 'BAD_SUB'
  | 'MISSING_EXP'
  | 'MISSING_AUD'
  | 'BAD_CLAIM'
  | 'EXPIRED'
  | 'NOT_YET_VALID'
  | 'ISSUED_IN_FUTURE'
  | 'AUDIENCE_MISMATCH'
  | 'UNKNOWN_KID'
  | 'KEY_ALG_MISMATCH'
  | 'BAD_SIGNATURE'

export interface JwtSvidValidateOptions {
  /** The validation time; defaults to the current time. */
  now?: Date
  /** Clock skew allowed on `exp`, `nbf` and `iat`; default 60 s. */
  leewayMs?: number
}

interface AlgorithmSpec {
  readonly hash: 'sha256' | 'sha384' | 'sha512'
  readonly key: 'ec' | 'rsa'
  /** For ECDSA: the OpenSSL curve name the key must be on. */
  readonly curve?: string
  readonly pss?: boolean
}

const ALGORITHMS: ReadonlyMap<string, AlgorithmSpec> = new Map<JwtSvidAlgorithm, AlgorithmSpec>([
  ['RS256', { hash: 'sha256', key: 'rsa' }],
  ['RS384', { hash: 'sha384', key: 'rsa' }],
  ['RS512', { hash: 'sha512', key: 'rsa' }],
  ['PS256', { hash: 'sha256', key: 'rsa', pss: true }],
  ['PS384', { hash: 'sha384', key: 'rsa', pss: true }],
  ['PS512', { hash: 'sha512', key: 'rsa', pss: true }],
  ['ES256', { hash: 'sha256', key: 'ec', curve: 'prime256v1' }],
  ['ES384', { hash: 'sha384', key: 'ec', curve: 'secp384r1' }],
  ['ES512', { hash: 'sha512', key: 'ec', curve: 'secp521r1' }],
])

function jwtError(reason: JwtSvidReason, message: string, cause?: unknown): SpiffeError {
  return new SpiffeError('SPIFFE_JWT_INVALID', message, cause === undefined ? { reason } : { reason, cause })
}

/** What a token says about itself, checked for shape but not yet trusted. */
interface ParsedToken {
  readonly alg: string
  readonly spec: AlgorithmSpec
  readonly kid: string
  readonly id: SpiffeId
  readonly audience: readonly string[]
  readonly expMs: number
  readonly nbfMs: number | undefined
  readonly iatMs: number | undefined
  readonly claims: Readonly<Record<string, unknown>>
  readonly signingInput: Buffer
  readonly signature: Buffer
}

export class JwtSvid {
  readonly id: SpiffeId
  readonly token: string
  /** The token's `aud`, always as a list. */
  readonly audience: readonly string[]
  readonly expiry: Date
  /** `iat`, when the token has one. */
  readonly issuedAt: Date | undefined
  /** Every claim of the token, deeply frozen. */
  readonly claims: Readonly<Record<string, unknown>>
  readonly hint: string
  readonly #lifeStartMs: number

  private constructor(parsed: ParsedToken, token: string, hint: string, receivedMs: number) {
    this.id = parsed.id
    this.token = token
    this.audience = parsed.audience
    this.expiry = new Date(parsed.expMs)
    this.issuedAt = parsed.iatMs === undefined ? undefined : new Date(parsed.iatMs)
    this.claims = parsed.claims
    this.hint = hint
    this.#lifeStartMs = parsed.iatMs ?? receivedMs
  }

  /**
   * Parses and fully validates a JWT-SVID (JWT-SVID.md §4 and App. A):
   * structure, algorithm allow-list, `sub`, the key of sub's trust domain
   * under `kid`, the signature, then `aud`, `exp`, `nbf` and `iat`.
   * Throws SPIFFE_JWT_INVALID with a JwtSvidReason, or SPIFFE_BUNDLE_NOT_FOUND
   * when no JWT bundle is held for sub's trust domain.
   */
  static parseAndValidate(
    token: string,
    bundles: JwtBundleSource,
    audience: string | readonly string[],
    options: JwtSvidValidateOptions = {},
  ): JwtSvid {
    const expected = expectedAudience(audience)
    const nowMs = timeOf(options)
    const leewayMs = leewayOf(options)
    const cached = typeof token === 'string' ? verifiedCache.get(token) : undefined
    const parsed = cached?.parsed ?? parseToken(token)

    // Looked up on every call, cached or not: the bundle and the key under
    // `kid` may have been rotated out since the signature was last checked.
    const td = parsed.id.trustDomain
    const bundle = bundles.getJwtBundleForTrustDomain(td)
    if (bundle === undefined) {
      throw new SpiffeError(
        'SPIFFE_BUNDLE_NOT_FOUND',
        `no JWT bundle for trust domain "${td.name}" of JWT-SVID subject ${quoted(parsed.id.toString())}`,
      )
    }
    const authority = bundle.findAuthority(parsed.kid)
    if (authority === undefined) {
      throw jwtError(
        'UNKNOWN_KID',
        `JWT-SVID key ID ${quoted(parsed.kid)} is not in the JWT bundle of "${td.name}"`,
      )
    }

    let svid = cached?.svid
    if (cached?.authority !== authority) {
      verifySignature(parsed, authority)
      svid = new JwtSvid(parsed, token, '', nowMs)
      rememberVerified(token, { parsed, authority, svid })
    }
    checkClaims(parsed, expected, nowMs, leewayMs)
    return svid as JwtSvid
  }

  /**
   * Parses a JWT-SVID and checks its structure and claims (`sub`, `exp`,
   * `aud`, `nbf`, `iat`) without checking the signature. Only for tokens
   * that come from a trusted channel: the Workload API's FetchJWTSVID, or
   * after its ValidateJWTSVID accepted them (as go-spiffe's ParseInsecure).
   */
  static parseInsecure(
    token: string,
    audience: string | readonly string[],
    hint = '',
    options: JwtSvidValidateOptions = {},
  ): JwtSvid {
    const expected = expectedAudience(audience)
    const nowMs = timeOf(options)
    const leewayMs = leewayOf(options)
    const parsed = parseToken(token)
    checkClaims(parsed, expected, nowMs, leewayMs)
    return new JwtSvid(parsed, token, hint, nowMs)
  }

  /**
   * The middle of the token's life, from `iat` (or, without one, from when
   * it was parsed) to `exp`: the point to fetch a fresh token, as SPIRE's
   * agent does for its own cache (SPIRE `pkg/agent/manager/cache`).
   */
  halfLifeAt(): Date {
    const expMs = this.expiry.getTime()
    const start = Math.min(this.#lifeStartMs, expMs)
    return new Date(start + Math.floor((expMs - start) / 2))
  }

  /** The token is a bearer credential: keep it out of logs and JSON dumps. */
  toJSON(): Record<string, unknown> {
    return {
      id: this.id.toString(),
      audience: this.audience,
      expiry: this.expiry.toISOString(),
      hint: this.hint,
    }
  }

  [inspect.custom](): string {
    return `JwtSvid { id: ${this.id}, audience: ${JSON.stringify(this.audience)}, expiry: ${this.expiry.toISOString()}, token: [redacted] }`
  }
}

// `kid` and `sub` are the caller's until the signature is checked, and messages reach logs: quote them
// with control characters escaped, cut to 80 characters.
function quoted(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s)
}

function expectedAudience(audience: string | readonly string[]): readonly string[] {
  const list = typeof audience === 'string' ? [audience] : audience
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    list.some((a) => typeof a !== 'string' || a.length === 0)
  ) {
    throw new SpiffeError(
      'SPIFFE_ARGUMENT_INVALID',
      'expected audience must be one or more non-empty strings',
    )
  }
  return list
}

function timeOf(options: JwtSvidValidateOptions): number {
  const ms = options.now === undefined ? Date.now() : options.now.getTime()
  if (!Number.isFinite(ms)) throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', '`now` is not a valid date')
  return ms
}

function leewayOf(options: JwtSvidValidateOptions): number {
  const leeway = options.leewayMs ?? DEFAULT_JWT_LEEWAY_MS
  if (!Number.isFinite(leeway) || leeway < 0) {
    throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', '`leewayMs` must be a finite number >= 0')
  }
  return leeway
}

// ---------------------------------------------------------------------------
// Structure

// base64url alphabet, no padding (RFC 7515 §2).
const B64URL = new Uint8Array(128)
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_') {
  B64URL[ch.charCodeAt(0)] = 1
}
const B64URL_VALUE = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/**
 * Decodes strict base64url: alphabet only, no padding, and canonical (the
 * unused low bits of the last character are zero). Buffer's own decoder
 * skips invalid characters, so two different strings could carry one token.
 */
function decodeSegment(token: string, start: number, end: number, part: string): Buffer {
  const len = end - start
  if (len % 4 === 1) throw jwtError('MALFORMED', `JWT-SVID ${part} has an impossible base64url length`)
  for (let i = start; i < end; i++) {
    const c = token.charCodeAt(i)
    if (c >= 128 || B64URL[c] === 0) {
      throw jwtError('MALFORMED', `JWT-SVID ${part} is not base64url (character at offset ${i})`)
    }
  }
  if (len % 4 !== 0) {
    const last = B64URL_VALUE.indexOf(token[end - 1] as string)
    const unusedBits = len % 4 === 2 ? 0x0f : 0x03
    if ((last & unusedBits) !== 0) {
      throw jwtError('MALFORMED', `JWT-SVID ${part} is not canonical base64url`)
    }
  }
  return Buffer.from(token.slice(start, end), 'base64url')
}

function parseSegmentJson(bytes: Buffer, part: string, maxDepth: number): JsonObject {
  const value = parseStrictJson(bytes, {
    errorCode: 'SPIFFE_JWT_INVALID',
    what: `JWT-SVID ${part}`,
    maxBytes: MAX_JWT_SVID_LENGTH,
    maxDepth,
  })
  if (!isJsonObject(value)) throw jwtError('MALFORMED', `JWT-SVID ${part} is not a JSON object`)
  return value
}

function parseToken(token: string): ParsedToken {
  if (typeof token !== 'string' || token.length === 0) throw jwtError('MALFORMED', 'JWT-SVID is empty')
  if (token.length > MAX_JWT_SVID_LENGTH) {
    throw jwtError(
      'TOO_LARGE',
      `JWT-SVID is ${token.length} bytes, over the ${MAX_JWT_SVID_LENGTH}-byte limit`,
    )
  }
  // JWS compact serialization only: exactly three parts. Five would be a JWE,
  // and the JSON serialization has no dots at all.
  const dot1 = token.indexOf('.')
  const dot2 = dot1 < 0 ? -1 : token.indexOf('.', dot1 + 1)
  if (dot2 < 0 || token.indexOf('.', dot2 + 1) >= 0) {
    throw jwtError('MALFORMED', 'JWT-SVID is not a JWS compact serialization of three parts')
  }
  if (dot1 === 0 || dot2 === dot1 + 1) throw jwtError('MALFORMED', 'JWT-SVID has an empty header or payload')

  const header = parseSegmentJson(decodeSegment(token, 0, dot1, 'header'), 'header', 4)
  const alg = header.alg
  const spec = typeof alg === 'string' ? ALGORITHMS.get(alg) : undefined
  if (spec === undefined) {
    throw jwtError(
      'BAD_ALG',
      `JWT-SVID alg ${typeof alg === 'string' ? JSON.stringify(alg.slice(0, 16)) : 'is missing'}; allowed: ${JWT_SVID_ALGORITHMS.join(', ')}`,
    )
  }
  if (Object.hasOwn(header, 'typ') && header.typ !== 'JWT' && header.typ !== 'JOSE') {
    throw jwtError('BAD_TYP', 'JWT-SVID typ must be absent, "JWT" or "JOSE"')
  }
  // We implement no JWS extensions, so any critical one must fail (RFC 7515 §4.1.11).
  if (Object.hasOwn(header, 'crit')) {
    throw jwtError('UNSUPPORTED_CRIT', 'JWT-SVID header has "crit"; no JWS extension is supported')
  }
  const kid = header.kid
  if (typeof kid !== 'string' || kid.length === 0) {
    throw jwtError('MISSING_KID', 'JWT-SVID header has no "kid"; the signing key cannot be selected')
  }
  if (kid.length > MAX_KID_LENGTH)
    throw jwtError('MALFORMED', `JWT-SVID "kid" is over ${MAX_KID_LENGTH} characters`)

  const payload = parseSegmentJson(decodeSegment(token, dot1 + 1, dot2, 'claims'), 'claims', 16)
  const claims = parseClaims(payload)

  if (dot2 === token.length - 1) throw jwtError('BAD_SIGNATURE', 'JWT-SVID has no signature')
  const signature = decodeSegment(token, dot2 + 1, token.length, 'signature')
  // The signing input is ASCII (base64url), so latin1 is an exact, fast copy.
  const signingInput = Buffer.from(token.slice(0, dot2), 'latin1')
  return { alg: alg as string, spec, kid, ...claims, signingInput, signature }
}

type ParsedClaims = Pick<ParsedToken, 'id' | 'audience' | 'expMs' | 'nbfMs' | 'iatMs' | 'claims'>

// Date's range; a NumericDate outside it cannot be compared or scheduled on.
const MAX_DATE_MS = 8.64e15

function numericDate(claims: JsonObject, name: string): number | undefined {
  if (!Object.hasOwn(claims, name)) return undefined
  const v = claims[name]
  if (typeof v !== 'number' || Math.abs(v * 1000) > MAX_DATE_MS) {
    throw jwtError('BAD_CLAIM', `JWT-SVID claim "${name}" is not a NumericDate`)
  }
  return v * 1000
}

function parseClaims(claims: JsonObject): ParsedClaims {
  const sub = claims.sub
  if (sub === undefined || sub === '') throw jwtError('MISSING_SUB', 'JWT-SVID has no "sub" claim')
  if (typeof sub !== 'string') throw jwtError('BAD_SUB', 'JWT-SVID "sub" claim is not a string')
  const id = SpiffeId.tryParseResult(sub)
  if (id instanceof SpiffeError) {
    throw jwtError('BAD_SUB', `JWT-SVID "sub" is not a SPIFFE ID (${id.reason})`, id)
  }

  const expMs = numericDate(claims, 'exp')
  if (expMs === undefined) throw jwtError('MISSING_EXP', 'JWT-SVID has no "exp" claim')
  const nbfMs = numericDate(claims, 'nbf')
  const iatMs = numericDate(claims, 'iat')

  const aud = claims.aud
  let audience: string[]
  if (aud === undefined) throw jwtError('MISSING_AUD', 'JWT-SVID has no "aud" claim')
  if (typeof aud === 'string') {
    audience = [aud]
  } else if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) {
    audience = aud as string[]
  } else {
    throw jwtError('BAD_CLAIM', 'JWT-SVID "aud" is neither a string nor an array of strings')
  }
  if (audience.length === 0) throw jwtError('MISSING_AUD', 'JWT-SVID "aud" is an empty array')

  return {
    id,
    audience: Object.freeze(audience),
    expMs,
    nbfMs,
    iatMs,
    claims: deepFreeze(claims) as Readonly<Record<string, unknown>>,
  }
}

function deepFreeze(value: JsonValue): JsonValue {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

function checkClaims(
  parsed: ParsedToken,
  expected: readonly string[],
  nowMs: number,
  leewayMs: number,
): void {
  if (nowMs - leewayMs > parsed.expMs) throw jwtError('EXPIRED', `JWT-SVID of ${parsed.id} has expired`)
  if (parsed.nbfMs !== undefined && nowMs + leewayMs < parsed.nbfMs) {
    throw jwtError('NOT_YET_VALID', `JWT-SVID of ${parsed.id} is not valid yet (nbf)`)
  }
  if (parsed.iatMs !== undefined && nowMs + leewayMs < parsed.iatMs) {
    throw jwtError('ISSUED_IN_FUTURE', `JWT-SVID of ${parsed.id} was issued in the future (iat)`)
  }
  const aud = parsed.audience
  for (let i = 0; i < expected.length; i++) {
    if (aud.includes(expected[i] as string)) return
  }
  throw jwtError(
    'AUDIENCE_MISMATCH',
    `JWT-SVID of ${parsed.id} has audience ${JSON.stringify(aud)}, expected one of ${JSON.stringify(expected)}`,
  )
}

// ---------------------------------------------------------------------------
// Signature

interface KeyProfile {
  readonly type: 'ec' | 'rsa' | 'other'
  readonly curve: string | undefined
  /** Exact signature length the key produces: 2 × field size (EC), modulus size (RSA). */
  readonly signatureBytes: number
}

// asymmetricKeyDetails crosses into C++ on every read; keys live as long as
// their bundle, so their profile is computed once.
const keyProfiles = new WeakMap<KeyObject, KeyProfile>()
const EC_SIGNATURE_BYTES: Readonly<Record<string, number>> = { prime256v1: 64, secp384r1: 96, secp521r1: 132 }

function profileOf(key: KeyObject): KeyProfile {
  let profile = keyProfiles.get(key)
  if (profile === undefined) {
    const details = key.asymmetricKeyDetails ?? {}
    if (key.asymmetricKeyType === 'ec') {
      const curve = details.namedCurve
      profile = {
        type: 'ec',
        curve,
        signatureBytes: curve === undefined ? 0 : (EC_SIGNATURE_BYTES[curve] ?? 0),
      }
    } else if (key.asymmetricKeyType === 'rsa') {
      profile = { type: 'rsa', curve: undefined, signatureBytes: Math.ceil((details.modulusLength ?? 0) / 8) }
    } else {
      profile = { type: 'other', curve: undefined, signatureBytes: 0 }
    }
    keyProfiles.set(key, profile)
  }
  return profile
}

function verifySignature(parsed: ParsedToken, authority: JwtAuthority): void {
  const { spec, signature } = parsed
  const profile = profileOf(authority.publicKey)
  // The key, not the header, decides what may verify: an RSA key never
  // verifies an ES256 claim, and a P-384 key never an ES256 one.
  if (profile.type !== spec.key || (spec.curve !== undefined && profile.curve !== spec.curve)) {
    throw jwtError(
      'KEY_ALG_MISMATCH',
      `JWT-SVID alg ${parsed.alg} does not match key ${quoted(parsed.kid)} (${profile.type}${profile.curve === undefined ? '' : ` ${profile.curve}`})`,
    )
  }
  // JWS ECDSA signatures are raw r‖s of a fixed length (RFC 7518 §3.4); a DER
  // signature, or an RSA signature shorter than the modulus, is malformed.
  if (signature.length !== profile.signatureBytes) {
    throw jwtError(
      'BAD_SIGNATURE',
      `JWT-SVID signature is ${signature.length} bytes, ${parsed.alg} needs ${profile.signatureBytes}`,
    )
  }
  const key = authority.publicKey
  let ok: boolean
  try {
    ok =
      spec.key === 'ec'
        ? verify(spec.hash, parsed.signingInput, { key, dsaEncoding: 'ieee-p1363' }, signature)
        : spec.pss
          ? verify(
              spec.hash,
              parsed.signingInput,
              // RFC 7518 §3.5: the salt is as long as the hash output.
              { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
              signature,
            )
          : verify(spec.hash, parsed.signingInput, { key, padding: constants.RSA_PKCS1_PADDING }, signature)
  } catch (cause) {
    throw jwtError(
      'BAD_SIGNATURE',
      `JWT-SVID signature does not verify with key ${quoted(parsed.kid)}`,
      cause,
    )
  }
  if (!ok)
    throw jwtError('BAD_SIGNATURE', `JWT-SVID signature does not verify with key ${quoted(parsed.kid)}`)
}

// ---------------------------------------------------------------------------
// Verified-signature cache

interface VerifiedEntry {
  readonly parsed: ParsedToken
  /** The exact authority object the signature verified with. */
  readonly authority: JwtAuthority
  readonly svid: JwtSvid
}

// Bounded in entries and in the token length it keeps, so a flood of large
// distinct tokens costs at most ~16 MiB. Oldest-first eviction: a token in
// steady use is re-verified once per MAX_CACHED_TOKENS new tokens at worst.
const MAX_CACHED_TOKENS = 2048
const MAX_CACHED_TOKEN_LENGTH = 8 * 1024
const verifiedCache = new Map<string, VerifiedEntry>()

function rememberVerified(token: string, entry: VerifiedEntry): void {
  if (token.length > MAX_CACHED_TOKEN_LENGTH) return
  verifiedCache.delete(token)
  if (verifiedCache.size >= MAX_CACHED_TOKENS) {
    const oldest = verifiedCache.keys().next()
    if (oldest.done !== true) verifiedCache.delete(oldest.value)
  }
  verifiedCache.set(token, entry)
}

/** Drops every cached signature result (for tests and for callers that want a cold start). */
export function clearJwtSvidCache(): void {
  verifiedCache.clear()
}
