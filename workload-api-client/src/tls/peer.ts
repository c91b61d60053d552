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
 * only the leaf is left. Servers therefore let OpenSSL find no anchor
 * (server.ts: no roots, rejectUnauthorized false), which leaves the stack
 * whole, and the whole verification runs here.
 */
import type { X509Certificate } from 'node:crypto'
import type { Socket } from 'node:net'
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls'
import { SpiffeError } from '../errors.ts'
import type { IdMatcher } from '../id-matcher.ts'
import type { SpiffeId } from '../spiffe-id.ts'
import { type VerifiedX509Svid, type VerifyX509Options, verifyX509Svid } from '../verify-x509.ts'
import type { X509BundleSource } from '../x509-bundle.ts'
import { ParsedCert } from '../x509-cert.ts'
import { checkChainPolicy, type PeerPurpose } from './chain-policy.ts'

// Deeper chains are not SPIRE-shaped; the walk stops there whatever the peer sent.
const MAX_WALK = 8

// The chain verifyTlsPeer read, DER, kept on the socket: reading it on a server takes it out of OpenSSL's stack.
const PEER_CHAIN = Symbol('workload-api-client.peerChain')
// The leaf and intermediates of the path verifyTlsPeer accepted, for reverifyTlsPeer.
const VERIFIED_CHAIN = Symbol('workload-api-client.verifiedChain')

/**
 * The peer's chain as DER, leaf first, in issuing order, without a
 * self-issued last certificate (the anchor OpenSSL appended from our store,
 * or a root the peer sent): anchors come from the bundle, never the peer.
 * On a socket verifyTlsPeer (or a SpiffeTlsServer/Client) checked, the chain
 * it read.
 */
export function peerChain(socket: TLSSocket): Buffer[] {
  const read = (socket as TLSSocket & { [PEER_CHAIN]?: readonly Buffer[] })[PEER_CHAIN]
  if (read !== undefined) return [...read]
  return chainOfDetailed(socket.getPeerCertificate(true))
}

function chainOfDetailed(leaf: PeerCertificate | Record<string, never> | null): Buffer[] {
  if (leaf === null || typeof leaf !== 'object' || !leaf.raw) return []
  const chain: Buffer[] = [leaf.raw]
  let cert = leaf as DetailedPeerCertificate
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
 * A server socket's chain through getPeerX509Certificate(), with what
 * peerChain() returns (same links, same order, same anchor rule), for a
 * fraction of the cost: getPeerCertificate(true) builds a legacy object per
 * certificate (three fingerprints, the key, the names), tens of µs each,
 * which a handshake paid for nothing. It empties OpenSSL's stack of
 * intermediates (nodejs/node#65579), so the result is kept on the socket;
 * on a server the leaf stays readable. Not for client sockets: there it
 * empties everything, and Node has already built the detailed chain.
 */
function serverChain(socket: TLSSocket): Buffer[] {
  const leaf = socket.getPeerX509Certificate()
  if (leaf === undefined) return []
  // The stack as the peer sent it; getPeerCertificate(true) links each certificate to the first of the rest
  // that issued it (X509_check_issued, which checkIssued is), and so does this.
  const rest: X509Certificate[] = []
  for (let c = leaf.issuerCertificate; c !== undefined && rest.length < MAX_WALK; c = c.issuerCertificate) {
    rest.push(c)
  }
  const chain = [leaf]
  let cert = leaf
  while (chain.length < MAX_WALK) {
    const at = rest.findIndex((c) => cert.checkIssued(c))
    const issuer = rest[at]
    if (issuer === undefined) break
    rest.splice(at, 1)
    if (issuer.raw.equals(cert.raw)) break
    chain.push(issuer)
    cert = issuer
  }
  if (chain.length > 1 && cert.checkIssued(cert)) chain.pop()
  return chain.map((c) => c.raw)
}

// A property rather than a WeakMap entry: http2 hands out a Proxy of the socket (session.socket,
// req.socket), which forwards property reads to the socket but is not the same WeakMap key.
const PEER_ID = Symbol('workload-api-client.peerId')

/**
 * The verified SPIFFE ID of a connection a SpiffeTlsServer accepted or a
 * SpiffeTlsClient made: the socket, or http2's proxy of it (`req.socket`).
 */
export function peerIdOf(socket: Socket): SpiffeId | undefined {
  return (socket as Socket & { [PEER_ID]?: SpiffeId })[PEER_ID]
}

export function rememberPeerId(socket: TLSSocket, id: SpiffeId): void {
  Object.defineProperty(socket, PEER_ID, { value: id, enumerable: false })
}

export interface VerifyTlsPeerOptions {
  /** `client` on a server (the peer is a client), `server` on a client. */
  purpose: PeerPurpose
  /** The leaf seen when the session was first established (a resumed client session shows none). */
  resumedLeaf?: Buffer | undefined
}

/**
 * Verifies the peer of an established TLS connection and returns its SPIFFE
 * ID. Refuses with verifyX509Svid's codes and reasons (an absent certificate
 * is SPIFFE_SVID_INVALID/EMPTY), with SPIFFE_CHAIN_UNVERIFIED and a
 * ChainPolicyReason for what OpenSSL would also refuse, and with
 * SPIFFE_PEER_UNAUTHORIZED/UNAUTHORIZED when the authorizer does not allow
 * the verified ID.
 */
export function verifyTlsPeer(
  socket: TLSSocket,
  bundles: X509BundleSource,
  authorizer: IdMatcher,
  options: VerifyTlsPeerOptions,
): SpiffeId {
  return verifyPeerSocket(socket, bundles, authorizer, options).id
}

/**
 * verifyTlsPeer for the helpers: `presented` is the detailed chain Node built
 * for its own checkServerIdentity call on a client, read instead of building
 * it again; the leaf verified is returned beside the ID (for resumption).
 */
export function verifyPeerSocket(
  socket: TLSSocket,
  bundles: X509BundleSource,
  authorizer: IdMatcher,
  options: VerifyTlsPeerOptions & { presented?: PeerCertificate | undefined },
): { id: SpiffeId; leaf: Buffer | undefined } {
  let chain =
    options.presented !== undefined
      ? chainOfDetailed(options.presented)
      : options.purpose === 'client'
        ? serverChain(socket)
        : peerChain(socket)
  if (options.purpose === 'client') {
    Object.defineProperty(socket, PEER_CHAIN, { value: chain, enumerable: false, configurable: true })
  }
  const resumed = socket.isSessionReused()
  if (chain.length === 0 && options.resumedLeaf !== undefined && resumed) chain = [options.resumedLeaf]
  const leaf = chain[0]
  // A resumed session carries the leaf only; the intermediates come from full handshakes (rememberChain).
  if (leaf !== undefined && chain.length === 1 && resumed) chain = recalledChain(bundles, leaf) ?? chain
  const verified = verifyX509Svid(chain, bundles)
  checkChainPolicy(verified.verifiedChain, options.purpose, verified.id)
  if (chain.length > 1) rememberChain(bundles, chain)
  if (!authorizer(verified.id)) {
    throw new SpiffeError(
      'SPIFFE_PEER_UNAUTHORIZED',
      `peer ${verified.id} is not allowed here (expected ${authorizer.description})`,
      { reason: 'UNAUTHORIZED' },
    )
  }
  const path = verified.verifiedChain.slice(0, -1)
  Object.defineProperty(socket, VERIFIED_CHAIN, { value: path, enumerable: false, configurable: true })
  return { id: verified.id, leaf }
}

/**
 * Verifies again the peer a SpiffeTlsServer, SpiffeTlsClient or
 * verifyTlsPeer accepted on `socket`: the path it validated then, against
 * `bundles` and the clock now. A connection may outlive what verified its
 * peer (the peer's trust domain leaves the bundles, its SVID or a CA
 * expires, X509-SVID §5 and SPIFFE_Federation §4), so a server serving
 * several requests per connection asks before each. Throws as
 * verifyX509Svid does; SPIFFE_SVID_INVALID/EMPTY on a socket never verified.
 */
export function reverifyTlsPeer(
  socket: TLSSocket,
  bundles: X509BundleSource,
  options: VerifyX509Options = {},
): VerifiedX509Svid {
  const path = (socket as TLSSocket & { [VERIFIED_CHAIN]?: readonly X509Certificate[] })[VERIFIED_CHAIN]
  return verifyX509Svid(path ?? [], bundles, options)
}

// The intermediates of chains verified under a bundle source, for resumed sessions, which carry the peer's leaf
// only. Kept per intermediate chain, not per leaf: SPIRE signs every leaf of a trust domain through the same few
// intermediates, so a handful of entries serves any number of peers, where a memory per leaf forgot a peer once
// enough others had passed and then refused its resumptions. A recalled chain is verified again all the same, so
// intermediates another peer presented give a resumed leaf no path a full handshake would not accept. A new source
// (a rotation, for callers that make one per update) starts empty.
const INTERMEDIATE_MEMORY = 64
interface Intermediates {
  /** The certificate that issues leaves. */
  readonly issuer: ParsedCert
  readonly chain: readonly Buffer[]
}
const verifiedIntermediates = new WeakMap<X509BundleSource, Map<string, Intermediates>>()

// The whole DER as the key, the way x509-cert.ts interns certificates: no digest to compute on every handshake.
function intermediatesKey(chain: readonly Buffer[]): string {
  let key = ''
  for (let i = 1; i < chain.length; i++) key += `${(chain[i] as Buffer).toString('latin1')}\0`
  return key
}

function rememberChain(bundles: X509BundleSource, chain: Buffer[]): void {
  let known = verifiedIntermediates.get(bundles)
  if (known === undefined) {
    known = new Map()
    verifiedIntermediates.set(bundles, known)
  }
  const key = intermediatesKey(chain)
  if (known.has(key)) return
  if (known.size >= INTERMEDIATE_MEMORY) {
    const oldest = known.keys().next()
    if (oldest.done !== true) known.delete(oldest.value)
  }
  const issuer = ParsedCert.of(chain[1] as Buffer, 'SPIFFE_CHAIN_UNVERIFIED', 'peer intermediate')
  known.set(key, { issuer, chain: chain.slice(1) })
}

function recalledChain(bundles: X509BundleSource, leaf: Buffer): Buffer[] | undefined {
  const known = verifiedIntermediates.get(bundles)
  if (known === undefined || known.size === 0) return undefined
  let parsed: ParsedCert
  try {
    parsed = ParsedCert.of(leaf, 'SPIFFE_SVID_INVALID', 'peer leaf')
  } catch {
    return undefined
  }
  // Newest first: after an intermediate's rotation its successor is the likelier issuer.
  const entries = [...known.values()]
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i] as Intermediates
    if (parsed.ext.issuerName === entry.issuer.ext.subjectName && parsed.isSignedBy(entry.issuer)) {
      return [leaf, ...entry.chain]
    }
  }
  return undefined
}
