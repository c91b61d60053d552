/**
 * SPIFFE verification of a TLS peer, in our code, against the bundle of the
 * trust domain the peer's ID names: OpenSSL verifies against the union of
 * every trust domain's roots, which accepts an ID of trust domain A signed by
 * B's CA. The chain verified is the one the peer presented (leaf, then the
 * intermediates of an UpstreamAuthority or nested SPIRE), the leaf must be a
 * conformant X.509-SVID, the chain must pass what OpenSSL would check
 * (chain-policy.ts), and the ID must pass the authorizer.
 *
 * Where the chain comes from: getPeerCertificate(true). On a client socket
 * it is the presented chain plus the root OpenSSL took from our store. On a
 * server socket Node 24 loses it once OpenSSL's verification succeeds: its
 * own onServerSocketSecure() calls getPeerX509Certificate(), which removes
 * the certificates it walks from OpenSSL's peer stack (nodejs/node#65579), so
 * only the leaf is left. Inbound listeners therefore let OpenSSL find no
 * anchor (server-tls.ts: no roots, rejectUnauthorized false), which leaves
 * the stack whole, and the whole verification runs here.
 * sidecar/test/chain.test.ts pins both behaviours.
 */
import { createHash } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import { type IdMatcher, isSpiffeError, type SpiffeId, verifyX509Svid } from 'workload-api-client'
import { SvidecarError, type SvidecarErrorCode } from '../errors/index.ts'
import type { IdentitySnapshot } from '../identity/identity.ts'
import { ChainPolicyError, checkChainPolicy } from './chain-policy.ts'

// Deeper chains are not SPIRE-shaped; the walk stops there whatever the peer sent.
const MAX_WALK = 8

/**
 * The peer's chain as DER, leaf first, in issuing order, without a
 * self-issued last certificate (the anchor OpenSSL appended from our store,
 * or a root the peer sent): anchors come from the bundle, never the peer.
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
 * throws SvidecarError with `code` (SVD_PEER_REJECTED inbound, where the peer
 * is a TLS client; SVD_UPSTREAM_PEER_REJECTED outbound, where it is a server)
 * and the rule broken as `reason`.
 */
export function verifyPeer(
  socket: TLSSocket,
  snapshot: IdentitySnapshot,
  authorizer: IdMatcher,
  code: SvidecarErrorCode,
  /** The leaf seen when the session was first established (a resumed client session shows none). */
  resumedLeaf?: Buffer,
): SpiffeId {
  let chain = peerChain(socket)
  if (chain.length === 0 && resumedLeaf !== undefined && socket.isSessionReused()) chain = [resumedLeaf]
  const leaf = chain[0]
  if (leaf === undefined)
    throw new SvidecarError(code, 'the peer presented no certificate', { reason: 'NO_CERTIFICATE' })
  // A resumed session carries the leaf only; the intermediates are the ones verified when it was established.
  if (chain.length === 1 && socket.isSessionReused()) chain = recalledChain(snapshot, leaf) ?? chain
  let id: SpiffeId
  try {
    const verified = verifyX509Svid(chain, snapshot.bundleSource)
    checkChainPolicy(verified.verifiedChain, code === 'SVD_PEER_REJECTED' ? 'client' : 'server', verified.id)
    id = verified.id
  } catch (err) {
    throw rejected(err, code)
  }
  if (chain.length > 1) rememberChain(snapshot, chain)
  if (!authorizer(id)) {
    throw new SvidecarError(code, `peer ${id} is not allowed here (expected ${authorizer.description})`, {
      reason: 'UNAUTHORIZED',
    })
  }
  return id
}

// Chains verified under a snapshot, by leaf, for the resumptions of their sessions. A new snapshot starts empty,
// as do the session caches built with it; the recalled chain is verified again all the same.
const CHAIN_MEMORY = 1024
const verifiedChains = new WeakMap<IdentitySnapshot, Map<string, Buffer[]>>()

function leafKey(leaf: Buffer): string {
  return createHash('sha256').update(leaf).digest('base64')
}

function rememberChain(snapshot: IdentitySnapshot, chain: Buffer[]): void {
  let byLeaf = verifiedChains.get(snapshot)
  if (byLeaf === undefined) {
    byLeaf = new Map()
    verifiedChains.set(snapshot, byLeaf)
  }
  const key = leafKey(chain[0] as Buffer)
  if (byLeaf.has(key)) return
  if (byLeaf.size >= CHAIN_MEMORY) {
    const oldest = byLeaf.keys().next()
    if (oldest.done !== true) byLeaf.delete(oldest.value)
  }
  byLeaf.set(key, chain)
}

function recalledChain(snapshot: IdentitySnapshot, leaf: Buffer): Buffer[] | undefined {
  return verifiedChains.get(snapshot)?.get(leafKey(leaf))
}

function rejected(err: unknown, code: SvidecarErrorCode): SvidecarError {
  if (err instanceof ChainPolicyError) {
    return new SvidecarError(code, `peer certificate rejected: ${err.message}`, { reason: err.reason })
  }
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
