/**
 * A certificate parsed once: Node's X509Certificate, its DER, the extensions
 * SVID rules need, and validity as numbers. Peers present the same few
 * certificates on every handshake, so parsed certificates are interned by
 * their DER, and each remembers which issuers' signatures over it have been
 * checked. A signature is a fact about two immutable byte strings, so caching
 * it is safe; validity and bundle membership are re-checked on every call.
 */
import { type KeyObject, X509Certificate } from 'node:crypto'
import { SpiffeError, type SpiffeErrorCode } from './errors.ts'
import { DerError } from './internal/der.ts'
import { parseX509Extensions, type X509Extensions } from './internal/x509-extensions.ts'

const CACHE_LIMIT = 4096
const cache = new Map<string, ParsedCert>()

export class ParsedCert {
  readonly cert: X509Certificate
  readonly der: Buffer
  readonly ext: X509Extensions
  readonly notBeforeMs: number
  readonly notAfterMs: number
  /** Issuers whose signature over this certificate has been verified. */
  readonly #verifiedIssuers = new Set<ParsedCert>()
  #publicKey: KeyObject | undefined

  private constructor(cert: X509Certificate, der: Buffer, ext: X509Extensions) {
    this.cert = cert
    this.der = der
    this.ext = ext
    this.notBeforeMs = cert.validFromDate.getTime()
    this.notAfterMs = cert.validToDate.getTime()
  }

  /**
   * The interned parse of `input`. Errors carry `code` (the caller knows
   * whether this is an SVID, a peer chain or a bundle) and reason
   * BAD_CERTIFICATE.
   */
  static of(input: X509Certificate | Uint8Array, code: SpiffeErrorCode, where: string): ParsedCert {
    const der = input instanceof X509Certificate ? input.raw : input
    const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1')
    const hit = cache.get(key)
    if (hit !== undefined) return hit
    let parsed: ParsedCert
    try {
      const cert = input instanceof X509Certificate ? input : new X509Certificate(der)
      const own = Buffer.from(der)
      parsed = new ParsedCert(cert, own, parseX509Extensions(own))
    } catch (err) {
      const detail = err instanceof DerError ? err.message : 'not a DER X.509 certificate'
      throw new SpiffeError(code, `${where}: ${detail}`, { reason: 'BAD_CERTIFICATE', cause: err })
    }
    if (cache.size >= CACHE_LIMIT) {
      // FIFO eviction: cheap, and the working set of a mesh is far below the limit.
      const oldest = cache.keys().next()
      if (oldest.done !== true) cache.delete(oldest.value)
    }
    cache.set(key, parsed)
    return parsed
  }

  get publicKey(): KeyObject {
    this.#publicKey ??= this.cert.publicKey
    return this.#publicKey
  }

  /** Whether `issuer`'s name matches this certificate's issuer and its key verifies the signature. */
  isSignedBy(issuer: ParsedCert): boolean {
    if (this.#verifiedIssuers.has(issuer)) return true
    // Exact DER name match first (cheap, and what SPIRE-issued chains use);
    // OpenSSL's check covers names that differ only in string encoding.
    if (this.ext.issuerName !== issuer.ext.subjectName && !this.cert.checkIssued(issuer.cert)) return false
    let ok = false
    try {
      ok = this.cert.verify(issuer.publicKey)
    } catch {
      // A key of the wrong type for the signature algorithm is a mismatch, not a crash.
    }
    if (ok) this.#verifiedIssuers.add(issuer)
    return ok
  }

  /** True when `nowMs` lies inside [notBefore, notAfter]. */
  validAt(nowMs: number): boolean {
    return nowMs >= this.notBeforeMs && nowMs <= this.notAfterMs
  }
}

/** Drops interned certificates and cached signature results (tests, key compromise drills). */
export function clearX509Cache(): void {
  cache.clear()
}
