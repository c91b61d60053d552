/**
 * Peer X.509-SVID verification (X509-SVID.md §5): leaf rules, then path
 * validation to a root in the bundle of the trust domain the leaf's own ID
 * names, never a pool of all bundles (a federated CA could otherwise mint
 * IDs in our trust domain), and only then authorization by the caller.
 */
import type { X509Certificate } from 'node:crypto'
import { SpiffeError } from './errors.ts'
import { nameConstraintViolation } from './internal/name-constraints.ts'
import type { SpiffeId } from './spiffe-id.ts'
import { checkLeaf, checkSigner, leafSpiffeId } from './svid-rules.ts'
import { parsedAuthoritiesOf, type X509BundleSource } from './x509-bundle.ts'
import { ParsedCert } from './x509-cert.ts'

export interface VerifyX509Options {
  /** The time to validate at; defaults to now. */
  now?: Date | number
}

export interface VerifiedX509Svid {
  readonly id: SpiffeId
  /** Leaf, the intermediates used, and the bundle root the path ends in. */
  readonly verifiedChain: readonly X509Certificate[]
}

/** No SPIFFE deployment nests CAs this deep; the cap bounds work on hostile chains. */
export const MAX_CHAIN_LENGTH = 8

function unverified(reason: string, message: string): SpiffeError {
  return new SpiffeError('SPIFFE_CHAIN_UNVERIFIED', message, { reason })
}

/**
 * Verifies a peer's certificate chain (leaf first, then intermediates as
 * presented) and returns its SPIFFE ID. Throws SPIFFE_SVID_INVALID for leaf
 * rule violations, SPIFFE_BUNDLE_NOT_FOUND when the ID's trust domain has no
 * bundle, and SPIFFE_CHAIN_UNVERIFIED when no valid path reaches its roots.
 */
export function verifyX509Svid(
  chain: readonly (X509Certificate | Uint8Array)[],
  bundles: X509BundleSource,
  options: VerifyX509Options = {},
): VerifiedX509Svid {
  if (chain.length === 0) {
    throw new SpiffeError('SPIFFE_SVID_INVALID', 'peer presented no certificate', { reason: 'EMPTY' })
  }
  if (chain.length > MAX_CHAIN_LENGTH) {
    throw unverified(
      'CHAIN_TOO_LONG',
      `peer chain has ${chain.length} certificates, over ${MAX_CHAIN_LENGTH}`,
    )
  }
  const now = options.now === undefined ? Date.now() : Number(options.now)
  const leaf = ParsedCert.of(chain[0] as X509Certificate | Uint8Array, 'SPIFFE_SVID_INVALID', 'peer leaf')
  const id = leafSpiffeId(leaf)
  checkLeaf(leaf, false)

  const bundle = bundles.getX509BundleForTrustDomain(id.trustDomain)
  if (bundle === undefined) {
    throw new SpiffeError(
      'SPIFFE_BUNDLE_NOT_FOUND',
      `no X.509 bundle for trust domain "${id.trustDomain}" of ${id}`,
      {
        reason: 'NO_BUNDLE',
      },
    )
  }
  const roots = parsedAuthoritiesOf(bundle)
  if (roots.length === 0) {
    throw unverified(
      'NO_AUTHORITIES',
      `the bundle of "${id.trustDomain}" holds no authorities; its SVIDs are untrusted`,
    )
  }
  const intermediates: ParsedCert[] = []
  for (let i = 1; i < chain.length; i++) {
    intermediates.push(
      ParsedCert.of(
        chain[i] as X509Certificate | Uint8Array,
        'SPIFFE_CHAIN_UNVERIFIED',
        `peer chain certificate ${i + 1}`,
      ),
    )
  }

  checkValidity(leaf, now, 'leaf certificate')
  const path = findPath(id, leaf, roots, intermediates, now)
  return { id, verifiedChain: path.map((p) => p.cert) }
}

// Bounds the search on hostile chains of certificates that all sign each other.
const MAX_PATH_ATTEMPTS = 64

/**
 * Depth-first search for a valid path from the leaf to a root of the bundle.
 * Several certificates may fit as the issuer (a root renewed with the same
 * key and name, both held during the overlap; CA rotation; a peer sending
 * extra certificates), so one that fails its checks is not the end: the next
 * candidate is tried, as Go tries every candidate and OpenSSL prefers a
 * currently valid issuer. When no path is valid, the first failure is thrown.
 */
function findPath(
  id: SpiffeId,
  leaf: ParsedCert,
  roots: readonly ParsedCert[],
  intermediates: readonly ParsedCert[],
  now: number,
): ParsedCert[] {
  let attempts = 0
  let firstError: unknown
  const fail = (err: unknown): undefined => {
    firstError ??= err
    return undefined
  }
  const extend = (path: ParsedCert[]): ParsedCert[] | undefined => {
    const current = path[path.length - 1] as ParsedCert
    let candidates = 0
    // A bundle root ends the path; the signature decides which root it is.
    for (const root of roots) {
      if (!current.isSignedBy(root)) continue
      candidates++
      if (++attempts > MAX_PATH_ATTEMPTS) break
      try {
        checkCaPathLen(root, path.length - 1, 'bundle root')
        checkValidity(root, now, 'bundle root')
        const full = [...path, root]
        checkNameConstraints(full)
        return full
      } catch (err) {
        fail(err)
      }
    }
    for (const next of intermediates) {
      if (path.includes(next) || !current.isSignedBy(next)) continue
      candidates++
      if (++attempts > MAX_PATH_ATTEMPTS) break
      const what = `intermediate ${path.length} of ${id}`
      try {
        checkSigner(next, 'SPIFFE_CHAIN_UNVERIFIED', what)
        checkCaPathLen(next, path.length - 1, what)
        checkValidity(next, now, what)
      } catch (err) {
        fail(err)
        continue
      }
      const found = extend([...path, next])
      if (found !== undefined) return found
    }
    if (candidates === 0) {
      fail(
        unverified(
          'UNKNOWN_AUTHORITY',
          path.length === 1
            ? `${id} is not signed by a root of the "${id.trustDomain}" bundle or by a presented intermediate`
            : `the chain of ${id} ends in an intermediate not signed by a root of the "${id.trustDomain}" bundle`,
        ),
      )
    }
    return undefined
  }
  const found = extend([leaf])
  if (found !== undefined) return found
  throw firstError ?? unverified('UNKNOWN_AUTHORITY', `no path from ${id} to a root of its bundle`)
}

// RFC 5280 §4.2.1.10: a CA's name constraints bind every certificate below it in the path, except
// self-issued intermediates; trust anchors' constraints apply too, as OpenSSL and Go apply them.
function checkNameConstraints(path: readonly ParsedCert[]): void {
  for (let k = 1; k < path.length; k++) {
    const nc = (path[k] as ParsedCert).ext.nameConstraints
    if (nc === undefined) continue
    for (let i = 0; i < k; i++) {
      const { ext } = path[i] as ParsedCert
      if (i > 0 && ext.issuerName === ext.subjectName) continue
      const violation = nameConstraintViolation(nc, ext)
      if (violation !== undefined) {
        const what = i === 0 ? 'the leaf' : `intermediate ${i}`
        const by = k === path.length - 1 ? 'the bundle root' : `intermediate ${k}`
        throw unverified('NAME_CONSTRAINTS', `${what}: ${violation} of ${by}'s name constraints`)
      }
    }
  }
}

function checkValidity(cert: ParsedCert, now: number, what: string): void {
  if (now < cert.notBeforeMs) {
    throw unverified(
      'NOT_YET_VALID',
      `${what} is not valid before ${new Date(cert.notBeforeMs).toISOString()}`,
    )
  }
  if (now > cert.notAfterMs) {
    throw unverified('EXPIRED', `${what} expired at ${new Date(cert.notAfterMs).toISOString()}`)
  }
}

// RFC 5280 §4.2.1.9: pathLenConstraint counts the non-leaf certificates that may follow this CA.
function checkCaPathLen(ca: ParsedCert, below: number, what: string): void {
  const limit = ca.ext.pathLenConstraint
  if (limit !== undefined && below > limit) {
    throw unverified(
      'PATH_LEN_EXCEEDED',
      `${what} allows ${limit} intermediate(s) below it, the chain has ${below}`,
    )
  }
}
