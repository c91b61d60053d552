/**
 * SPIFFE verification of a TLS peer, run in our code after OpenSSL's own
 * checks. OpenSSL verifies against the union of every trust domain's roots,
 * which accepts an ID of trust domain A signed by B's CA; here the chain must
 * verify against the bundle of the trust domain the peer's ID names, the leaf
 * must be a conformant X.509-SVID, and the ID must pass the authorizer.
 */
import type { TLSSocket } from 'node:tls'
import { type IdMatcher, isSpiffeError, type SpiffeId, verifyX509Svid } from 'workload-api-client'
import { SvidecarError, type SvidecarErrorCode } from '../errors/index.ts'
import type { IdentitySnapshot } from '../identity/identity.ts'

// Deeper chains are not SPIRE-shaped; the walk stops there whatever the peer sent.
const MAX_WALK = 8

/**
 * The peer's chain as DER, leaf first, without the trust anchor OpenSSL
 * appended from our own store.
 */
export function peerChain(socket: TLSSocket): Buffer[] {
  const leaf = socket.getPeerCertificate(true)
  if (leaf === null || typeof leaf !== 'object' || !leaf.raw) return []
  const chain: Buffer[] = [leaf.raw]
  let cert = leaf
  while (chain.length < MAX_WALK) {
    const issuer = cert.issuerCertificate
    if (
      issuer === undefined ||
      issuer === null ||
      !issuer.raw ||
      issuer === cert ||
      issuer.raw.equals(cert.raw)
    )
      break
    chain.push(issuer.raw)
    cert = issuer
  }
  // A self-issued last certificate is the anchor; verification takes anchors from the bundle, never from the peer.
  const last = chain.length > 1 ? cert : undefined
  if (
    last !== undefined &&
    (last.issuerCertificate === last || last.issuerCertificate?.raw?.equals(last.raw))
  )
    chain.pop()
  return chain
}

/**
 * The peer's leaf certificate, DER. Not getPeerX509Certificate(): on a
 * client socket in Node 24 it answers only once, and afterwards both it and
 * getPeerCertificate() come back empty (sidecar/test/tls.test.ts pins this).
 */
export function peerLeafDer(socket: TLSSocket): Buffer | undefined {
  const cert = socket.getPeerCertificate()
  return cert !== null && typeof cert === 'object' && cert.raw ? cert.raw : undefined
}

/** The peer leaf's serial number (upper-case hex), for events. */
export function peerSerial(socket: TLSSocket): string {
  const cert = socket.getPeerCertificate()
  return cert !== null && typeof cert === 'object' && typeof cert.serialNumber === 'string'
    ? cert.serialNumber
    : ''
}

/**
 * Verifies the peer of an established TLS socket; returns its SPIFFE ID or
 * throws SvidecarError with `code` (SVD_PEER_REJECTED inbound,
 * SVD_UPSTREAM_PEER_REJECTED outbound) and the rule broken as `reason`.
 */
export function verifyPeer(
  socket: TLSSocket,
  snapshot: IdentitySnapshot,
  authorizer: IdMatcher,
  code: SvidecarErrorCode,
  /** The leaf seen when the session was first established (a resumed client session shows none). */
  resumedLeaf?: Buffer,
): SpiffeId {
  const leaf = peerLeafDer(socket) ?? (socket.isSessionReused() ? resumedLeaf : undefined)
  if (leaf === undefined)
    throw new SvidecarError(code, 'the peer presented no certificate', { reason: 'NO_CERTIFICATE' })
  let id: SpiffeId
  try {
    // SPIRE's SVIDs chain straight to a root: the leaf alone is enough and skips walking the chain.
    id = verifyX509Svid([leaf], snapshot.bundleSource).id
  } catch (err) {
    if (!isSpiffeError(err, 'SPIFFE_CHAIN_UNVERIFIED')) throw rejected(err, code)
    try {
      id = verifyX509Svid(peerChain(socket), snapshot.bundleSource).id
    } catch (err2) {
      throw rejected(err2, code)
    }
  }
  if (!authorizer(id)) {
    throw new SvidecarError(code, `peer ${id} is not allowed here (expected ${authorizer.description})`, {
      reason: 'UNAUTHORIZED',
    })
  }
  return id
}

function rejected(err: unknown, code: SvidecarErrorCode): SvidecarError {
  if (isSpiffeError(err)) {
    return new SvidecarError(code, `peer certificate rejected: ${err.message}`, {
      reason: err.reason ?? err.code,
      cause: err,
    })
  }
  return new SvidecarError(code, 'peer certificate could not be verified', {
    reason: 'UNVERIFIABLE',
    cause: err,
  })
}
