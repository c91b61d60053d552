/**
 * The X.509 authorities (root CA certificates) of one trust domain. During a
 * CA rotation a bundle holds two roots for hours, so a bundle is a set, and
 * an empty bundle is meaningful: every SVID of that trust domain is rejected
 * (SPIFFE_Trust_Domain_and_Bundle.md §4.1.3).
 */
import type { X509Certificate } from 'node:crypto'
import type { BundleSet } from './bundle-set.ts'
import { splitDerCertificates } from './internal/der.ts'
import { derToPem, pemToDer } from './pem.ts'
import type { TrustDomain } from './spiffe-id.ts'
import { ParsedCert } from './x509-cert.ts'

// The parsed roots, for path validation inside the library; kept off the class so they are no part of its API.
const parsedRoots = new WeakMap<X509Bundle, readonly ParsedCert[]>()

/** The parsed roots of `bundle` (not exported from the package). */
export function parsedAuthoritiesOf(bundle: X509Bundle): readonly ParsedCert[] {
  return parsedRoots.get(bundle) ?? []
}

export class X509Bundle {
  readonly trustDomain: TrustDomain
  readonly #authorities: readonly ParsedCert[]

  private constructor(trustDomain: TrustDomain, authorities: readonly ParsedCert[]) {
    this.trustDomain = trustDomain
    this.#authorities = authorities
    parsedRoots.set(this, authorities)
  }

  /** A bundle of the given roots; duplicates (same DER) are kept once. */
  static fromAuthorities(trustDomain: TrustDomain, certs: Iterable<X509Certificate>): X509Bundle {
    const parsed: ParsedCert[] = []
    let i = 0
    for (const cert of certs) {
      i++
      parsed.push(
        ParsedCert.of(cert, 'SPIFFE_BUNDLE_INVALID', `bundle of "${trustDomain}", certificate ${i}`),
      )
    }
    return new X509Bundle(trustDomain, dedupe(parsed))
  }

  /** Parses concatenated DER certificates, the Workload API's bundle encoding. */
  static parseRaw(trustDomain: TrustDomain, der: Uint8Array): X509Bundle {
    const where = `bundle of "${trustDomain}"`
    // An empty field is an empty bundle here; whether that is allowed is the caller's call.
    if (der.length === 0) return new X509Bundle(trustDomain, [])
    const certs = splitDerCertificates(der, 'SPIFFE_BUNDLE_INVALID', where)
    return new X509Bundle(
      trustDomain,
      dedupe(
        certs.map((c, i) => ParsedCert.of(c, 'SPIFFE_BUNDLE_INVALID', `${where}, certificate ${i + 1}`)),
      ),
    )
  }

  /** Parses PEM `CERTIFICATE` blocks (`spire-server bundle show` output). */
  static parsePem(trustDomain: TrustDomain, pem: string): X509Bundle {
    const where = `bundle of "${trustDomain}"`
    const ders = pemToDer(pem, 'CERTIFICATE', 'SPIFFE_BUNDLE_INVALID', where)
    return new X509Bundle(
      trustDomain,
      dedupe(ders.map((d, i) => ParsedCert.of(d, 'SPIFFE_BUNDLE_INVALID', `${where}, certificate ${i + 1}`))),
    )
  }

  get authorities(): readonly X509Certificate[] {
    return this.#authorities.map((a) => a.cert)
  }

  get isEmpty(): boolean {
    return this.#authorities.length === 0
  }

  hasAuthority(cert: X509Certificate): boolean {
    const der = cert.raw
    return this.#authorities.some((a) => a.der.equals(der))
  }

  /** Same trust domain and the same set of roots, in any order. */
  equals(other: X509Bundle | undefined): boolean {
    if (other === undefined || !other.trustDomain.equals(this.trustDomain)) return false
    if (other.#authorities.length !== this.#authorities.length) return false
    // Roots are interned by DER, so identity is the fast path; DER equality
    // covers a root parsed again after the intern cache evicted it.
    const mine = new Set(this.#authorities)
    return other.#authorities.every((a) => mine.has(a) || this.#authorities.some((b) => b.der.equals(a.der)))
  }

  toDer(): Buffer {
    return Buffer.concat(this.#authorities.map((a) => a.der))
  }

  toPem(): string {
    return this.#authorities.map((a) => derToPem('CERTIFICATE', a.der)).join('')
  }
}

function dedupe(certs: ParsedCert[]): ParsedCert[] {
  return [...new Set(certs)]
}

/** Where verification looks up the bundle of a peer's trust domain. */
export interface X509BundleSource {
  getX509BundleForTrustDomain(trustDomain: TrustDomain): X509Bundle | undefined
}

/** Adapts a BundleSet to X509BundleSource. */
export function x509BundleSource(set: BundleSet<X509Bundle>): X509BundleSource {
  return { getX509BundleForTrustDomain: (td) => set.get(td) }
}
