/**
 * The X509-SVID rules for single certificates (X509-SVID.md §4, §5), shared
 * by own-SVID parsing and peer verification so both read them the same way.
 */
import { SpiffeError, type SpiffeErrorCode } from './errors.ts'
import { SpiffeId } from './spiffe-id.ts'
import type { ParsedCert } from './x509-cert.ts'

function svidError(reason: string, message: string, cause?: unknown): SpiffeError {
  return new SpiffeError('SPIFFE_SVID_INVALID', message, cause === undefined ? { reason } : { reason, cause })
}

/** The leaf's SPIFFE ID: exactly one URI SAN, strictly parsed, with a workload (non-root) path. */
export function leafSpiffeId(leaf: ParsedCert): SpiffeId {
  const uris = leaf.ext.uriSans
  if (uris.length === 0) throw svidError('NO_URI_SAN', 'leaf certificate has no URI SAN, so no SPIFFE ID')
  if (uris.length > 1) {
    throw svidError(
      'MULTIPLE_URI_SANS',
      `leaf certificate has ${uris.length} URI SANs; an SVID has exactly one`,
    )
  }
  const id = SpiffeId.tryParseResult(uris[0] as string)
  if (id instanceof SpiffeError) {
    throw svidError('BAD_SPIFFE_ID', `leaf URI SAN is not a valid SPIFFE ID: ${id.message}`, id)
  }
  if (id.isRoot) {
    throw svidError(
      'ROOT_PATH',
      `leaf SPIFFE ID "${id}" has no path; it names a trust domain, not a workload`,
    )
  }
  return id
}

/** Leaf constraints. Own SVIDs must also carry digitalSignature; peers are judged as go-spiffe does. */
export function checkLeaf(leaf: ParsedCert, own: boolean): void {
  const { ext } = leaf
  if (ext.isCa) throw svidError('LEAF_IS_CA', 'leaf certificate has basicConstraints cA=true')
  const ku = ext.keyUsage
  if (ku?.keyCertSign) throw svidError('LEAF_KEY_CERT_SIGN', 'leaf certificate has keyUsage keyCertSign')
  if (ku?.cRLSign) throw svidError('LEAF_CRL_SIGN', 'leaf certificate has keyUsage cRLSign')
  if (own) {
    if (ku === undefined) throw svidError('NO_KEY_USAGE', 'leaf certificate has no keyUsage extension')
    if (!ku.digitalSignature) throw svidError('NO_DIGITAL_SIGNATURE', 'leaf keyUsage lacks digitalSignature')
  }
  if (ext.subjectEmpty && !ext.sanCritical) {
    throw svidError('SAN_NOT_CRITICAL', 'leaf has an empty subject but its SAN extension is not critical')
  }
  checkCriticalExtensions(leaf, 'SPIFFE_SVID_INVALID', 'leaf certificate')
}

/** A certificate that signs another in the chain must be a CA allowed to sign certificates. */
export function checkSigner(cert: ParsedCert, code: SpiffeErrorCode, what: string): void {
  if (!cert.ext.isCa) {
    throw new SpiffeError(code, `${what} signs a certificate but is not a CA (basicConstraints cA=false)`, {
      reason: 'SIGNER_NOT_CA',
    })
  }
  if (cert.ext.keyUsage !== undefined && !cert.ext.keyUsage.keyCertSign) {
    throw new SpiffeError(code, `${what} signs a certificate but its keyUsage lacks keyCertSign`, {
      reason: 'SIGNER_NO_KEY_CERT_SIGN',
    })
  }
  checkCriticalExtensions(cert, code, what)
}

function checkCriticalExtensions(cert: ParsedCert, code: SpiffeErrorCode, what: string): void {
  const unknown = cert.ext.unknownCritical
  if (unknown.length > 0) {
    throw new SpiffeError(code, `${what} has unsupported critical extension(s) ${unknown.join(', ')}`, {
      reason: 'UNKNOWN_CRITICAL_EXTENSION',
    })
  }
}
