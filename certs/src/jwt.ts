/**
 * A development JWT-SVID issuer shaped like SPIRE's: ES256 on P-256 by
 * default, header `{alg, kid, typ: "JWT"}`, claims `sub`, `aud`, `exp`,
 * `iat`. It can also mint every kind of broken token a validator must
 * refuse, which is what most of its options are for.
 */
import {
  constants,
  createHmac,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
  randomBytes,
  sign,
} from 'node:crypto'
import { SpiffeError, TrustDomain } from 'workload-api-client'

export type JwtIssuerKeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048'

export interface DevJwtIssuerOptions {
  trustDomain: string
  /** Default `ec-p256` (ES256), SPIRE's default JWT key. */
  keyType?: JwtIssuerKeyType
  /** Default: 32 random base64url characters, like SPIRE's key IDs. */
  kid?: string
}

export interface IssueJwtSvidOptions {
  spiffeId: string
  /** A string is written as a string `aud`, an array as an array (even of one). */
  audience: string | string[]
  /** Default 5 minutes, SPIRE's default JWT-SVID TTL. */
  ttlMs?: number
  /** The issuing time (`iat`; `exp` = now + ttl). Default: the current time. */
  now?: Date
  /** Merged over the default claims; a value of `undefined` removes that claim. */
  claims?: Record<string, unknown>
  /** Merged over `{alg, kid, typ}`; `undefined` removes a member (e.g. `{ kid: undefined }`). */
  header?: Record<string, unknown>
  /** `der` produces the DER ECDSA signature a JWS must not carry. Default `p1363`. */
  signatureEncoding?: 'p1363' | 'der'
  /** Exact header JSON text, for documents no object can express (duplicate members). */
  rawHeader?: string
  /** Exact claims JSON text, likewise. */
  rawClaims?: string
}

const DEFAULT_TTL_MS = 5 * 60 * 1000

interface KeySpec {
  readonly alg: 'ES256' | 'ES384' | 'RS256'
  /** OpenSSL curve name for EC keys. */
  readonly curve?: string
}

const KEY_SPECS: Readonly<Record<JwtIssuerKeyType, KeySpec>> = {
  'ec-p256': { alg: 'ES256', curve: 'prime256v1' },
  'ec-p384': { alg: 'ES384', curve: 'secp384r1' },
  'rsa-2048': { alg: 'RS256' },
}

const EC_ALG_CURVES: Readonly<Record<string, string>> = {
  ES256: 'prime256v1',
  ES384: 'secp384r1',
  ES512: 'secp521r1',
}
const HASHES: Readonly<Record<string, string>> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' }

export class DevJwtIssuer {
  readonly trustDomain: string
  readonly kid: string
  readonly keyType: JwtIssuerKeyType
  /** The algorithm this issuer's key signs with when the header is not overridden. */
  readonly alg: string
  readonly publicKey: KeyObject
  readonly privateKey: KeyObject

  private constructor(trustDomain: string, kid: string, keyType: JwtIssuerKeyType) {
    this.trustDomain = trustDomain
    this.kid = kid
    this.keyType = keyType
    const spec = KEY_SPECS[keyType]
    this.alg = spec.alg
    const pair =
      spec.curve === undefined
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ec', { namedCurve: spec.curve })
    this.publicKey = pair.publicKey
    this.privateKey = pair.privateKey
  }

  static create(opts: DevJwtIssuerOptions): DevJwtIssuer {
    const td = TrustDomain.parse(opts.trustDomain)
    const keyType = opts.keyType ?? 'ec-p256'
    if (!Object.hasOwn(KEY_SPECS, keyType)) {
      throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', `unknown JWT key type "${keyType}"`)
    }
    return new DevJwtIssuer(td.name, opts.kid ?? randomBytes(24).toString('base64url'), keyType)
  }

  /** Mints a compact JWS. Without overrides the token is a valid JWT-SVID. */
  issue(opts: IssueJwtSvidOptions): string {
    const nowMs = (opts.now ?? new Date()).getTime()
    const ttlMs = opts.ttlMs ?? DEFAULT_TTL_MS
    const header = merge({ alg: this.alg, kid: this.kid, typ: 'JWT' }, opts.header)
    const claims = merge(
      {
        sub: opts.spiffeId,
        aud: opts.audience,
        exp: Math.floor((nowMs + ttlMs) / 1000),
        iat: Math.floor(nowMs / 1000),
      },
      opts.claims,
    )
    const headerJson = opts.rawHeader ?? JSON.stringify(header)
    const claimsJson = opts.rawClaims ?? JSON.stringify(claims)
    const input = `${b64url(headerJson)}.${b64url(claimsJson)}`
    const alg = typeof header.alg === 'string' ? header.alg : this.alg
    return `${input}.${this.#sign(alg, input, opts.signatureEncoding ?? 'p1363').toString('base64url')}`
  }

  /**
   * The public key as a JWKS: Workload API style (no `use`, as SPIRE strips
   * it) by default, or SPIFFE bundle style with `use: "jwt-svid"`.
   */
  jwks(options: { withUse?: boolean } = {}): { keys: JsonWebKey[] } {
    return { keys: [this.jwk(options)] }
  }

  /** The public key as one JWK with `kid` (and `use` when asked). */
  jwk(options: { withUse?: boolean } = {}): JsonWebKey {
    const jwk: JsonWebKey = { ...this.publicKey.export({ format: 'jwk' }), kid: this.kid }
    if (options.withUse === true) jwk.use = 'jwt-svid'
    return jwk
  }

  /**
   * Signs as the header's `alg` says when this key can; otherwise with the
   * key's own algorithm, so a token can claim an algorithm its key never
   * produced (the validator must catch the mismatch). `none` yields an empty
   * signature and HS* an HMAC keyed with the public key's PEM, the classic
   * algorithm-confusion forgery.
   */
  #sign(alg: string, input: string, encoding: 'p1363' | 'der'): Buffer {
    if (alg === 'none') return Buffer.alloc(0)
    const bits = alg.slice(2)
    const hash = HASHES[bits]
    if (alg.startsWith('HS') && hash !== undefined) {
      const secret = this.publicKey.export({ type: 'spki', format: 'pem' })
      return createHmac(hash, secret).update(input).digest()
    }
    const data = Buffer.from(input)
    const key = this.privateKey
    const native = KEY_SPECS[this.keyType]
    if (native.curve === undefined) {
      if (hash !== undefined && alg.startsWith('PS')) {
        return sign(hash, data, {
          key,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
        })
      }
      return sign(hash !== undefined && alg.startsWith('RS') ? hash : 'sha256', data, key)
    }
    const dsaEncoding = encoding === 'der' ? 'der' : 'ieee-p1363'
    const ecHash =
      EC_ALG_CURVES[alg] === native.curve ? (hash as string) : (HASHES[native.alg.slice(2)] as string)
    return sign(ecHash, data, { key, dsaEncoding })
  }
}

function merge(
  base: Record<string, unknown>,
  overrides: Record<string, unknown> | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  if (overrides === undefined) return out
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete out[k]
    else out[k] = v
  }
  return out
}

function b64url(json: string): string {
  return Buffer.from(json, 'utf8').toString('base64url')
}
