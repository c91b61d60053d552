/**
 * The certificate chain a TLS peer presented, as DER, leaf first, in issuing
 * order. Read from a socket whose OpenSSL verification was switched off (no
 * roots, `rejectUnauthorized: false`): Node 24 drops the certificates OpenSSL
 * walked from the peer stack once its own verification succeeds
 * (nodejs/node#65579), so SPIFFE code verifies the whole chain itself, with
 * the bundle of the peer's own trust domain, before any byte is sent.
 */
import type { TLSSocket } from 'node:tls'

// No SPIFFE deployment nests CAs deeper; verifyX509Svid enforces its own cap.
const MAX_WALK = 10

/** A self-issued last certificate (a root the peer sent) is dropped: anchors come from bundles only. */
export function presentedChain(socket: TLSSocket): Buffer[] {
  const leaf = socket.getPeerCertificate(true)
  if (leaf === null || typeof leaf !== 'object' || !leaf.raw) return []
  const chain: Buffer[] = [leaf.raw]
  let cert = leaf
  while (chain.length < MAX_WALK) {
    const issuer = cert.issuerCertificate
    if (issuer === undefined || issuer === null || !issuer.raw || issuer.raw.equals(cert.raw)) break
    chain.push(issuer.raw)
    cert = issuer
  }
  if (chain.length > 1 && cert.issuerCertificate?.raw?.equals(cert.raw)) chain.pop()
  return chain
}
