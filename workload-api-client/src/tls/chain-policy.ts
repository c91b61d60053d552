/**
 * Checks OpenSSL makes on a peer chain that the SPIFFE path validation
 * (verify-x509.ts) does not, applied to the chain that validation returned.
 * Servers do not let OpenSSL verify the client chain (peer.ts says why), so
 * these keep refused every chain OpenSSL would have refused:
 * a purpose the chain does not allow (extended key usage anywhere in it, the
 * leaf's key usage), an issuer link OpenSSL would not make (the library links
 * by exact issuer name and signature; OpenSSL also compares the authority key
 * ID), a weak signature or key.
 *
 * And one SPIFFE rule the path validation leaves out (X509-SVID §3): a
 * signing certificate that carries a SPIFFE ID names a trust domain, with no
 * path, and the one that issues the leaf names the leaf's trust domain. A CA
 * may sign intermediates of other trust domains, so only the leaf's issuer is
 * held to the leaf's trust domain.
 */
import type { X509Certificate } from 'node:crypto'
import { SpiffeError } from '../errors.ts'
import { parseX509Extensions } from '../internal/x509-extensions.ts'
import { SpiffeId } from '../spiffe-id.ts'

/** What the peer's certificate is used for: a client authenticating to us, or a server we connected to. */
export type PeerPurpose = 'client' | 'server'

/** The reasons, beside verifyX509Svid's own, a TLS helper refuses a peer chain with (SPIFFE_CHAIN_UNVERIFIED). */
export type ChainPolicyReason =
  | 'EKU_MISMATCH'
  | 'KEY_USAGE_MISMATCH'
  | 'ISSUER_MISMATCH'
  | 'WEAK_SIGNATURE'
  | 'WEAK_KEY'
  | 'SIGNER_SPIFFE_ID'
  | 'SIGNER_TRUST_DOMAIN_MISMATCH'

function refused(reason: ChainPolicyReason, message: string): SpiffeError {
  return new SpiffeError('SPIFFE_CHAIN_UNVERIFIED', message, { reason })
}

const EKU_OID = { client: '1.3.6.1.5.5.7.3.2', server: '1.3.6.1.5.5.7.3.1' } as const
const ANY_EKU = '2.5.29.37.0'
// MD5 and SHA-1 signatures, refused by OpenSSL 3 from security level 1 on.
const WEAK_SIGNATURES = new Set([
  '1.2.840.113549.1.1.4',
  '1.2.840.113549.1.1.5',
  '1.2.840.10045.4.1',
  '1.2.840.10040.4.3',
  '1.3.14.3.2.29',
])
// Node 24's OpenSSL 3.5 runs at security level 2: 112-bit keys at least.
const MIN_RSA_BITS = 2048
const MIN_EC_BITS = 224

/**
 * `chain` is leaf first, ending in the bundle root. Throws
 * SPIFFE_CHAIN_UNVERIFIED with a ChainPolicyReason when OpenSSL, verifying
 * for `purpose`, would have refused the chain.
 */
export function checkChainPolicy(
  chain: readonly X509Certificate[],
  purpose: PeerPurpose,
  leafId: SpiffeId,
): void {
  if (passedBefore(chain, purpose)) return
  checkEach(chain, purpose, leafId)
  remember(chain, purpose)
}

// Every check here reads only the certificates themselves (no clock, no bundle), so a chain that passed once
// passes again. verifyX509Svid returns interned X509Certificate objects (one per DER), so the same chain is
// the same objects, and a repeated handshake costs a lookup instead of DER parsing and key decoding.
const MAX_PER_LEAF = 4
const passed = new WeakMap<X509Certificate, { purpose: PeerPurpose; chain: readonly X509Certificate[] }[]>()

function passedBefore(chain: readonly X509Certificate[], purpose: PeerPurpose): boolean {
  const leaf = chain[0]
  if (leaf === undefined) return false
  return (
    passed
      .get(leaf)
      ?.some(
        (e) =>
          e.purpose === purpose && e.chain.length === chain.length && e.chain.every((c, i) => c === chain[i]),
      ) ?? false
  )
}

function remember(chain: readonly X509Certificate[], purpose: PeerPurpose): void {
  const leaf = chain[0]
  if (leaf === undefined) return
  const list = passed.get(leaf) ?? []
  if (list.length >= MAX_PER_LEAF) list.shift()
  list.push({ purpose, chain: [...chain] })
  passed.set(leaf, list)
}

function checkEach(chain: readonly X509Certificate[], purpose: PeerPurpose, leafId: SpiffeId): void {
  chain.forEach((cert, i) => {
    const what = i === 0 ? 'leaf' : i === chain.length - 1 ? 'bundle root' : `intermediate ${i}`
    // X509Certificate.keyUsage holds the extended key usage OIDs; undefined when the extension is absent.
    const eku = cert.keyUsage
    if (eku !== undefined && !eku.includes(EKU_OID[purpose]) && !eku.includes(ANY_EKU)) {
      throw refused(
        'EKU_MISMATCH',
        `${what} has extendedKeyUsage without ${purpose === 'client' ? 'clientAuth' : 'serverAuth'}`,
      )
    }
    if (i === 0) checkLeafKeyUsage(cert, purpose)
    checkKey(cert, what)
    const issuer = chain[i + 1]
    if (issuer === undefined) return
    if (!cert.checkIssued(issuer)) {
      throw refused(
        'ISSUER_MISMATCH',
        `${what} does not name its signer as issuer (issuer name or authority key ID differ)`,
      )
    }
    // Not the root: it came from the bundle we hold, and what it names is that bundle's business.
    if (i > 0) checkSignerId(cert, what, i === 1 ? leafId : undefined)
    if (WEAK_SIGNATURES.has(cert.signatureAlgorithmOid ?? '')) {
      throw refused('WEAK_SIGNATURE', `${what} is signed with ${cert.signatureAlgorithm}`)
    }
  })
}

// OpenSSL's SSL client and server purposes: a leaf with keyUsage must allow what TLS does with its key.
function checkLeafKeyUsage(cert: X509Certificate, purpose: PeerPurpose): void {
  const ku = parseX509Extensions(cert.raw).keyUsage
  if (ku === undefined) return
  const ok =
    purpose === 'client'
      ? ku.digitalSignature || ku.keyAgreement
      : ku.digitalSignature || ku.keyAgreement || ku.keyEncipherment
  if (!ok) {
    throw refused(
      'KEY_USAGE_MISMATCH',
      `leaf keyUsage allows neither digitalSignature nor keyAgreement${purpose === 'server' ? ' nor keyEncipherment' : ''}`,
    )
  }
}

function checkSignerId(cert: X509Certificate, what: string, issues: SpiffeId | undefined): void {
  for (const uri of parseX509Extensions(cert.raw).uriSans) {
    if (!/^spiffe:/i.test(uri)) continue
    const id = SpiffeId.tryParse(uri)
    if (id === undefined || !id.isRoot) {
      throw refused(
        'SIGNER_SPIFFE_ID',
        `${what} carries ${JSON.stringify(uri)}, not the SPIFFE ID of a trust domain`,
      )
    }
    if (issues !== undefined && id.trustDomain.name !== issues.trustDomain.name) {
      throw refused(
        'SIGNER_TRUST_DOMAIN_MISMATCH',
        `${what} belongs to trust domain "${id.trustDomain.name}" but issued ${issues}`,
      )
    }
  }
}

function checkKey(cert: X509Certificate, what: string): void {
  const key = cert.publicKey
  const details = key.asymmetricKeyDetails
  if (
    key.asymmetricKeyType === 'rsa' ||
    key.asymmetricKeyType === 'rsa-pss' ||
    key.asymmetricKeyType === 'dsa'
  ) {
    const bits = details?.modulusLength ?? 0
    if (bits < MIN_RSA_BITS) {
      throw refused('WEAK_KEY', `${what} has a ${bits}-bit ${key.asymmetricKeyType} key`)
    }
  } else if (key.asymmetricKeyType === 'ec') {
    const curve = details?.namedCurve ?? ''
    const bits = EC_BITS[curve] ?? 0
    if (bits < MIN_EC_BITS) throw refused('WEAK_KEY', `${what} has an EC key on curve ${curve}`)
  }
}

const EC_BITS: Record<string, number> = {
  prime256v1: 256,
  secp384r1: 384,
  secp521r1: 521,
  secp224r1: 224,
  secp256k1: 256,
}
