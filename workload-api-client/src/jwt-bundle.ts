/**
 * JWT bundles: the JWT-SVID signing keys of one trust domain, by key ID.
 *
 * Keys are imported into KeyObjects once, when a bundle is parsed or built;
 * validation then looks a key up by `kid` and never touches JWK JSON again.
 * Bundles and authorities are immutable, so a validator may cache work per
 * authority object: a new bundle means new objects.
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import type { BundleSet } from './bundle-set.ts'
import { SpiffeError } from './errors.ts'
import { isJsonObject, type JsonObject, type JsonValue, parseStrictJson } from './internal/strict-json.ts'
import type { TrustDomain } from './spiffe-id.ts'

/**
 * A JSON Web Key as JSON (RFC 7517), the members bundles use named. The
 * library's own type rather than `node:crypto`'s `JsonWebKey`, which newer
 * `@types/node` majors no longer export: declarations naming it failed to
 * compile for users whose install brought such a version.
 */
export interface Jwk {
  kty?: string
  kid?: string
  use?: string
  alg?: string
  crv?: string
  x?: string
  y?: string
  n?: string
  e?: string
  x5c?: string[]
  [member: string]: unknown
}

/** One JWT signing key of a trust domain. */
export interface JwtAuthority {
  readonly kid: string
  readonly publicKey: KeyObject
  /** The public key as a JWK, with `kid`, without `use`. */
  readonly jwk: Jwk
}

export interface JwtBundleSource {
  /** The JWT bundle of `trustDomain`, or undefined when none is held. */
  getJwtBundleForTrustDomain(trustDomain: TrustDomain): JwtBundle | undefined
}

/** Stable reasons carried by SPIFFE_BUNDLE_INVALID for JWT keys. */
export type JwtKeyReason =
  | 'MISSING_KEYS'
  | 'BAD_KEY'
  | 'MISSING_KID'
  | 'DUPLICATE_KID'
  | 'UNSUPPORTED_KEY'
  | 'PRIVATE_KEY'

/** A JWKS for one trust domain is a handful of keys; this leaves room for hundreds. */
export const MAX_JWKS_BYTES = 1024 * 1024

// P-521 is accepted though SPIRE never issues it: ES512 is on the JWT-SVID
// algorithm list, so a federated trust domain may use it.
const EC_CURVES = new Set(['P-256', 'P-384', 'P-521'])
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']
// Go's crypto/rsa refuses to verify with keys under 1024 bits; so do we.
const MIN_RSA_BITS = 1024

function bundleError(reason: JwtKeyReason | 'MALFORMED', message: string, cause?: unknown): SpiffeError {
  return new SpiffeError(
    'SPIFFE_BUNDLE_INVALID',
    message,
    cause === undefined ? { reason } : { reason, cause },
  )
}

/**
 * Imports one JWK as a JWT verification key, or returns `undefined` when its
 * key type or curve is one this library cannot verify with (the caller
 * decides whether that is an error or a key to skip). A key of a known type
 * that is broken, or that carries private material, always throws.
 */
export function importJwtKey(jwk: JsonObject, where: string): KeyObject | undefined {
  const kty = jwk.kty
  if (kty === 'EC') {
    if (typeof jwk.crv !== 'string' || !EC_CURVES.has(jwk.crv)) return undefined
    if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
      throw bundleError('BAD_KEY', `${where}: EC key needs string "x" and "y"`)
    }
  } else if (kty === 'RSA') {
    if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') {
      throw bundleError('BAD_KEY', `${where}: RSA key needs string "n" and "e"`)
    }
  } else {
    return undefined
  }
  for (const m of PRIVATE_MEMBERS) {
    if (Object.hasOwn(jwk, m)) {
      throw bundleError(
        'PRIVATE_KEY',
        `${where}: key carries private member "${m}"; bundles hold public keys only`,
      )
    }
  }
  // Only the members the key type defines reach OpenSSL; `kid`, `use`, `alg`
  // and unknown members play no part in the key.
  const material =
    kty === 'EC'
      ? { kty, crv: jwk.crv as string, x: jwk.x as string, y: jwk.y as string }
      : { kty, n: jwk.n as string, e: jwk.e as string }
  let key: KeyObject
  try {
    key = createPublicKey({ key: material, format: 'jwk' })
  } catch (cause) {
    throw bundleError(
      'BAD_KEY',
      `${where}: ${kty} key does not import (bad encoding or point off the curve)`,
      cause,
    )
  }
  if (kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw bundleError('BAD_KEY', `${where}: RSA key is shorter than ${MIN_RSA_BITS} bits`)
  }
  return key
}

// Authorities this module built: frozen, with a `jwk` derived from the key.
// Reusing them keeps their identity, which validators key their caches on.
const ownAuthorities = new WeakSet<JwtAuthority>()

/** Builds a frozen authority from a key ID and a public key. */
export function jwtAuthority(kid: string, publicKey: KeyObject): JwtAuthority {
  if (typeof kid !== 'string' || kid.length === 0) {
    throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', 'a JWT authority needs a non-empty key ID')
  }
  if (publicKey.type !== 'public') {
    throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', `JWT authority "${kid}" must be a public key`)
  }
  const type = publicKey.asymmetricKeyType
  if (type !== 'ec' && type !== 'rsa') {
    throw new SpiffeError(
      'SPIFFE_ARGUMENT_INVALID',
      `JWT authority "${kid}" is a ${type} key; only EC and RSA verify JWT-SVIDs`,
    )
  }
  const jwk = Object.freeze({ ...publicKey.export({ format: 'jwk' }), kid })
  if (type === 'ec' && !EC_CURVES.has(jwk.crv ?? '')) {
    throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', `JWT authority "${kid}" uses an unsupported curve`)
  }
  if (type === 'rsa' && (publicKey.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw new SpiffeError(
      'SPIFFE_ARGUMENT_INVALID',
      `JWT authority "${kid}" is shorter than ${MIN_RSA_BITS} bits`,
    )
  }
  const authority: JwtAuthority = Object.freeze({ kid, publicKey, jwk })
  ownAuthorities.add(authority)
  return authority
}

/** The JWT signing keys of one trust domain. Immutable. */
export class JwtBundle implements JwtBundleSource {
  readonly trustDomain: TrustDomain
  readonly #authorities: ReadonlyMap<string, JwtAuthority>

  private constructor(trustDomain: TrustDomain, authorities: Map<string, JwtAuthority>) {
    this.trustDomain = trustDomain
    this.#authorities = authorities
  }

  /**
   * Parses a JWKS as the Workload API serves it (FetchJWTBundles): every key
   * is a JWT key and SPIRE strips `use`, so `use` is neither required nor
   * checked. Every key needs a `kid`. Unlike a SPIFFE bundle document, a key
   * this library cannot use fails the whole bundle, as go-spiffe's
   * jwtbundle.Parse does: the agent promised JWT keys, and silently dropping
   * one would turn a real problem into "unknown kid" failures later.
   */
  static parseJwks(trustDomain: TrustDomain, json: string | Uint8Array): JwtBundle {
    const doc = parseStrictJson(json, {
      errorCode: 'SPIFFE_BUNDLE_INVALID',
      what: `JWKS for "${trustDomain.name}"`,
      maxBytes: MAX_JWKS_BYTES,
    })
    if (!isJsonObject(doc) || !Array.isArray(doc.keys)) {
      throw bundleError('MISSING_KEYS', `JWKS for "${trustDomain.name}" has no "keys" array`)
    }
    const authorities = new Map<string, JwtAuthority>()
    doc.keys.forEach((entry: JsonValue, i: number) => {
      const where = `JWKS for "${trustDomain.name}", key ${i}`
      if (!isJsonObject(entry)) throw bundleError('BAD_KEY', `${where} is not an object`)
      const kid = requireKid(entry, where)
      const publicKey = importJwtKey(entry, where)
      if (publicKey === undefined) {
        throw bundleError(
          'UNSUPPORTED_KEY',
          `${where} ("${kid}") is not an EC P-256/P-384/P-521 or RSA key; JWT-SVIDs cannot be verified with it`,
        )
      }
      addAuthority(authorities, jwtAuthority(kid, publicKey), where)
    })
    return new JwtBundle(trustDomain, authorities)
  }

  /** A bundle holding `authorities`; duplicate key IDs are rejected. */
  static fromAuthorities(trustDomain: TrustDomain, authorities: Iterable<JwtAuthority>): JwtBundle {
    const map = new Map<string, JwtAuthority>()
    for (const a of authorities) {
      // Foreign objects are rebuilt so `jwk` can never disagree with the key
      // that actually verifies, and so nobody can mutate a held authority.
      const own = ownAuthorities.has(a) ? a : jwtAuthority(a.kid, a.publicKey)
      addAuthority(map, own, `JWT bundle for "${trustDomain.name}"`)
    }
    return new JwtBundle(trustDomain, map)
  }

  get authorities(): ReadonlyMap<string, JwtAuthority> {
    return this.#authorities
  }

  get size(): number {
    return this.#authorities.size
  }

  findAuthority(kid: string): JwtAuthority | undefined {
    return this.#authorities.get(kid)
  }

  /** A bundle serves as a source for its own trust domain only. */
  getJwtBundleForTrustDomain(trustDomain: TrustDomain): JwtBundle | undefined {
    return trustDomain.name === this.trustDomain.name ? this : undefined
  }

  /** The keys as a Workload API style JWKS (no `use`). */
  toJwks(): { keys: Jwk[] } {
    return { keys: [...this.#authorities.values()].map((a) => ({ ...a.jwk })) }
  }

  equals(other: JwtBundle | undefined): boolean {
    if (other === undefined || other.trustDomain.name !== this.trustDomain.name) return false
    if (other.#authorities.size !== this.#authorities.size) return false
    for (const [kid, a] of this.#authorities) {
      const b = other.#authorities.get(kid)
      if (b === undefined || (b !== a && !b.publicKey.equals(a.publicKey))) return false
    }
    return true
  }
}

/** Reads a JWK's required `kid`; throws MISSING_KID. */
export function requireKid(jwk: JsonObject, where: string): string {
  const kid = jwk.kid
  if (typeof kid !== 'string' || kid.length === 0) {
    throw bundleError('MISSING_KID', `${where} has no "kid"; JWT keys must be named`)
  }
  return kid
}

/** Adds `authority` to `map`; throws DUPLICATE_KID when its kid is taken. */
export function addAuthority(map: Map<string, JwtAuthority>, authority: JwtAuthority, where: string): void {
  if (map.has(authority.kid)) {
    throw bundleError('DUPLICATE_KID', `${where}: key ID "${authority.kid}" appears twice`)
  }
  map.set(authority.kid, authority)
}

/** Adapts a set of JWT bundles (one per trust domain) to a JwtBundleSource. */
export function jwtBundleSource(set: BundleSet<JwtBundle>): JwtBundleSource {
  return {
    getJwtBundleForTrustDomain(trustDomain: TrustDomain): JwtBundle | undefined {
      return set.get(trustDomain)
    },
  }
}
