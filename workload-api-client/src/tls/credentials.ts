/**
 * The credentials a handshake uses, built once per update of the source:
 * parsing PEM keys and roots costs far more than a handshake's lookup, so
 * every handshake between two updates shares one SecureContext. A rotated
 * SVID or bundle makes the next handshake build the next one; established
 * connections keep theirs.
 */
import { constants } from 'node:crypto'
import { createSecureContext, type SecureContext } from 'node:tls'
import type { BundleSet } from '../bundle-set.ts'
import type { X509Bundle, X509BundleSource } from '../x509-bundle.ts'
import type { X509Svid } from '../x509-svid.ts'

/**
 * What the TLS helpers need from a source: the current SVID (undefined when
 * none is usable), the bundles, and a notice of every change. An X509Source
 * is one.
 */
export interface X509TlsSource {
  readonly svid: X509Svid | undefined
  readonly bundles: BundleSet<X509Bundle>
  onUpdate(listener: () => void): () => void
}

/** TLS versions and suites; the defaults are TLS 1.2 to 1.3 with Node's default suites. */
export interface TlsProtocolOptions {
  minVersion?: 'TLSv1.2' | 'TLSv1.3'
  maxVersion?: 'TLSv1.2' | 'TLSv1.3'
  /** An OpenSSL cipher list, as node:tls takes it. */
  ciphers?: string
}

/** One generation of credentials. */
export interface TlsCredentials {
  readonly svid: X509Svid
  /** The bundles of this generation; verification of a handshake made with it uses these. */
  readonly bundles: X509BundleSource
  readonly keyPem: string
  readonly certChainPem: string
  /** Every root of every trust domain held: OpenSSL's first layer on a client, never the SPIFFE check. */
  readonly allRootsPem: readonly string[]
  /** Increments with every change; keys caches that must not outlive a rotation (session tickets). */
  readonly generation: number
}

/**
 * OpenSSL options of every context the helpers build. No renegotiation, in
 * either direction: a TLS 1.2 renegotiation is a new handshake inside the
 * connection that no SPIFFE check sees (the peer was verified at the first
 * one) and costs the server a handshake each time (CVE-2011-1473); node:tls
 * allows three per ten minutes. TLS 1.3 has none (RFC 8446 §4.1.2).
 */
export const TLS_SECURE_OPTIONS: number = constants.SSL_OP_NO_RENEGOTIATION

export function protocolOptions(options: TlsProtocolOptions): TlsProtocolOptions {
  return {
    minVersion: options.minVersion ?? 'TLSv1.2',
    maxVersion: options.maxVersion ?? 'TLSv1.3',
    ...(options.ciphers === undefined ? {} : { ciphers: options.ciphers }),
  }
}

export class CredentialCache {
  readonly #source: X509TlsSource
  readonly #protocol: TlsProtocolOptions
  #current: (TlsCredentials & { readonly bundlesSet: BundleSet<X509Bundle> }) | undefined
  #clientContext: SecureContext | undefined
  #generation = 0

  constructor(source: X509TlsSource, protocol: TlsProtocolOptions) {
    this.#source = source
    this.#protocol = protocolOptions(protocol)
  }

  get protocol(): TlsProtocolOptions {
    return this.#protocol
  }

  /** The credentials to handshake with now, or undefined: no usable SVID, fail closed. */
  current(): TlsCredentials | undefined {
    const svid = this.#source.svid
    if (svid === undefined) return undefined
    const bundles = this.#source.bundles
    const held = this.#current
    if (held !== undefined && held.svid === svid && held.bundlesSet === bundles) return held
    const pem = svid.toPem()
    const roots: string[] = []
    for (const bundle of bundles) for (const cert of bundle.authorities) roots.push(cert.toString())
    const next = {
      svid,
      bundlesSet: bundles,
      bundles: { getX509BundleForTrustDomain: (td) => bundles.get(td) } satisfies X509BundleSource,
      keyPem: pem.key,
      certChainPem: pem.certChain,
      allRootsPem: roots,
      generation: ++this.#generation,
    }
    this.#current = next
    this.#clientContext = undefined
    return next
  }

  /** A client context for `credentials` (the current generation's is built once). */
  clientContext(credentials: TlsCredentials): SecureContext {
    if (this.#current === credentials && this.#clientContext !== undefined) return this.#clientContext
    const context = createSecureContext({
      key: credentials.keyPem,
      cert: credentials.certChainPem,
      ca: [...credentials.allRootsPem],
      ...this.#protocol,
      secureOptions: TLS_SECURE_OPTIONS,
    })
    if (this.#current === credentials) this.#clientContext = context
    return context
  }

  /** Options for a server's setSecureContext: no roots at all (server.ts says why). */
  serverContextOptions(credentials: TlsCredentials | undefined) {
    if (credentials === undefined) return { ...this.#protocol, secureOptions: TLS_SECURE_OPTIONS }
    return {
      key: credentials.keyPem,
      cert: credentials.certChainPem,
      ca: [] as string[],
      ...this.#protocol,
      secureOptions: TLS_SECURE_OPTIONS,
    }
  }
}
