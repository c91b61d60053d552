/**
 * SPIFFE bundle documents (SPIFFE_Trust_Domain_and_Bundle.md §4) and bundle
 * maps (§5) from the dev PKI, shaped like `spire-server bundle show -format
 * spiffe`: X.509 roots as `x5c` entries, JWT keys with `use: "jwt-svid"`.
 * Written by hand rather than through the library's serializer so tests can
 * add the malformed entries and duplicate keys a parser must cope with.
 */
import type { X509Certificate } from 'node:crypto'
import type { DevJwtIssuer } from './jwt.ts'

/** Anything with a root certificate: a DevCa, or a bare certificate. */
export type X509AuthoritySource = { readonly root: X509Certificate } | X509Certificate

export interface SpiffeBundleDocumentOptions {
  /** Each CA contributes its root (DevCa.root) as one `x509-svid` entry. */
  x509Authorities?: readonly X509AuthoritySource[]
  /** Each issuer contributes its public key as one `jwt-svid` entry. */
  jwtIssuers?: readonly DevJwtIssuer[]
  /** Written exactly, even above 2^53. */
  sequence?: bigint | number
  refreshHintSeconds?: number
  /** Appended to `keys` as they are, e.g. entries with unknown `use` or `kty`. */
  extraKeys?: readonly unknown[]
}

/** A SPIFFE bundle document as JSON text. */
export function spiffeBundleDocument(opts: SpiffeBundleDocumentOptions = {}): string {
  const keys: unknown[] = []
  for (const source of opts.x509Authorities ?? []) {
    const cert = 'root' in source ? source.root : source
    keys.push({
      ...cert.publicKey.export({ format: 'jwk' }),
      use: 'x509-svid',
      x5c: [cert.raw.toString('base64')],
    })
  }
  for (const issuer of opts.jwtIssuers ?? []) keys.push(issuer.jwk({ withUse: true }))
  keys.push(...(opts.extraKeys ?? []))
  // Written by hand: JSON.stringify cannot emit a bigint sequence.
  let out = `{"keys":${JSON.stringify(keys)}`
  if (opts.refreshHintSeconds !== undefined) out += `,"spiffe_refresh_hint":${opts.refreshHintSeconds}`
  if (opts.sequence !== undefined) out += `,"spiffe_sequence":${BigInt(opts.sequence).toString()}`
  return `${out}}`
}

/**
 * A SPIFFE bundle map, `{"trust_domains": {...}}`, from (trust domain,
 * document JSON) pairs taken in order. A pair list rather than an object so
 * a test can repeat a trust domain, which a consumer must reject.
 */
export function spiffeBundleMapDocument(entries: ReadonlyArray<readonly [string, string]>): string {
  const members = entries.map(([td, doc]) => `${JSON.stringify(td)}:${doc}`)
  return `{"trust_domains":{${members.join(',')}}}`
}
