/**
 * Checks OpenSSL makes on a peer chain that the SPIFFE path validation in
 * workload-api-client does not, applied to the chain that validation
 * returned. Inbound handshakes no longer let OpenSSL verify the client chain
 * (peer.ts says why), so these keep refused every chain OpenSSL refused:
 * a purpose the chain does not allow, a weak signature or key. (Issuer links
 * OpenSSL would not make, such as a wrong authority key ID, the library
 * already refuses: it links certificates with X509Certificate.checkIssued.)
 */
import type { X509Certificate } from 'node:crypto'

export type PeerPurpose = 'client' | 'server'

export class ChainPolicyError extends Error {
  readonly reason: 'EKU_MISMATCH' | 'WEAK_SIGNATURE' | 'WEAK_KEY'
  constructor(reason: ChainPolicyError['reason'], message: string) {
    super(message)
    this.name = 'ChainPolicyError'
    this.reason = reason
  }
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
 * `chain` is leaf first, ending in the bundle root. Throws ChainPolicyError
 * when OpenSSL, verifying for `purpose`, would have refused the chain.
 */
export function checkChainPolicy(chain: readonly X509Certificate[], purpose: PeerPurpose): void {
  chain.forEach((cert, i) => {
    const what = i === 0 ? 'leaf' : i === chain.length - 1 ? 'bundle root' : `intermediate ${i}`
    // X509Certificate.keyUsage holds the extended key usage OIDs; undefined when the extension is absent.
    const eku = cert.keyUsage
    if (eku !== undefined && !eku.includes(EKU_OID[purpose]) && !eku.includes(ANY_EKU)) {
      throw new ChainPolicyError(
        'EKU_MISMATCH',
        `${what} has extendedKeyUsage without ${purpose === 'client' ? 'clientAuth' : 'serverAuth'}`,
      )
    }
    checkKey(cert, what)
    const issuer = chain[i + 1]
    if (issuer === undefined) return
    if (WEAK_SIGNATURES.has(cert.signatureAlgorithmOid ?? '')) {
      throw new ChainPolicyError('WEAK_SIGNATURE', `${what} is signed with ${cert.signatureAlgorithm}`)
    }
  })
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
      throw new ChainPolicyError('WEAK_KEY', `${what} has a ${bits}-bit ${key.asymmetricKeyType} key`)
    }
  } else if (key.asymmetricKeyType === 'ec') {
    const curve = details?.namedCurve ?? ''
    const bits = EC_BITS[curve] ?? 0
    if (bits < MIN_EC_BITS) throw new ChainPolicyError('WEAK_KEY', `${what} has an EC key on curve ${curve}`)
  }
}

const EC_BITS: Record<string, number> = {
  prime256v1: 256,
  secp384r1: 384,
  secp521r1: 521,
  secp224r1: 224,
  secp256k1: 256,
}
