/**
 * Workload API messages → validated library objects. Parsing is
 * all-or-nothing (go-spiffe, WL API §4.5): one bad SVID or bundle rejects
 * the whole message, so the caller keeps its previous, good state.
 */
import { BundleSet } from './bundle-set.ts'
import { SpiffeError } from './errors.ts'
import type {
  JWTBundlesResponse,
  JWTSVIDResponse,
  X509BundlesResponse,
  X509SVIDResponse,
} from './internal/gen/workload_pb.ts'
import { JwtBundle } from './jwt-bundle.ts'
import { JwtSvid } from './jwt-svid.ts'
import { SpiffeId, TrustDomain } from './spiffe-id.ts'
import { X509Bundle } from './x509-bundle.ts'
import { X509Svid } from './x509-svid.ts'

/** Everything one FetchX509SVID message says: the SVIDs, and the bundles of every trust domain. */
export interface X509Context {
  readonly svids: readonly X509Svid[]
  readonly bundles: BundleSet<X509Bundle>
}

function malformed(reason: string, message: string, cause?: unknown): SpiffeError {
  return new SpiffeError(
    'SPIFFE_WLAPI_MALFORMED_RESPONSE',
    message,
    cause === undefined ? { reason } : { reason, cause },
  )
}

function wrap<T>(what: string, fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    if (err instanceof SpiffeError && err.code === 'SPIFFE_WLAPI_MALFORMED_RESPONSE') throw err
    const detail = err instanceof Error ? err.message : String(err)
    const reason = err instanceof SpiffeError ? (err.reason ?? err.code) : 'INVALID'
    throw malformed(reason, `${what}: ${detail}`, err)
  }
}

function trustDomainKey(key: string, what: string): TrustDomain {
  return wrap(`${what} key "${key}"`, () => TrustDomain.parse(key))
}

export function parseX509SvidResponse(msg: X509SVIDResponse): X509Context {
  if (msg.svids.length === 0) throw malformed('MISSING_FIELD', 'X509SVIDResponse has no svids (mandatory)')
  const svids: X509Svid[] = []
  let bundles = new BundleSet<X509Bundle>()
  msg.svids.forEach((m, i) => {
    const what = `X509SVIDResponse svids[${i}]`
    for (const [field, empty] of [
      ['spiffe_id', m.spiffeId === ''],
      ['x509_svid', m.x509Svid.length === 0],
      ['x509_svid_key', m.x509SvidKey.length === 0],
      ['bundle', m.bundle.length === 0],
    ] as const) {
      if (empty) throw malformed('MISSING_FIELD', `${what}: mandatory field ${field} is empty`)
    }
    const svid = wrap(what, () => X509Svid.parseRaw(m.x509Svid, m.x509SvidKey, m.hint))
    const claimed = wrap(`${what} spiffe_id`, () => SpiffeId.parse(m.spiffeId))
    if (!claimed.equals(svid.id)) {
      throw malformed(
        'ID_MISMATCH',
        `${what}: spiffe_id ${claimed} differs from the certificate's ${svid.id}`,
      )
    }
    svids.push(svid)
    const td = svid.id.trustDomain
    if (!bundles.has(td))
      bundles = bundles.with(wrap(`${what} bundle`, () => X509Bundle.parseRaw(td, m.bundle)))
  })
  for (const [key, der] of Object.entries(msg.federatedBundles)) {
    const td = trustDomainKey(key, 'federated_bundles')
    // The own trust domain's bundle comes with the SVIDs; a federated copy must not override it.
    if (bundles.has(td)) continue
    bundles = bundles.with(wrap(`federated bundle "${key}"`, () => X509Bundle.parseRaw(td, der)))
  }
  return { svids, bundles }
}

export function parseX509BundlesResponse(msg: X509BundlesResponse): BundleSet<X509Bundle> {
  const entries = Object.entries(msg.bundles)
  if (entries.length === 0) throw malformed('MISSING_FIELD', 'X509BundlesResponse has no bundles (mandatory)')
  const out: X509Bundle[] = []
  for (const [key, der] of entries) {
    const td = trustDomainKey(key, 'bundles')
    out.push(wrap(`bundle "${key}"`, () => X509Bundle.parseRaw(td, der)))
  }
  return new BundleSet(out)
}

export function parseJwtBundlesResponse(msg: JWTBundlesResponse): BundleSet<JwtBundle> {
  const entries = Object.entries(msg.bundles)
  if (entries.length === 0) throw malformed('MISSING_FIELD', 'JWTBundlesResponse has no bundles (mandatory)')
  const out: JwtBundle[] = []
  for (const [key, json] of entries) {
    const td = trustDomainKey(key, 'bundles')
    out.push(wrap(`JWT bundle "${key}"`, () => JwtBundle.parseJwks(td, json)))
  }
  return new BundleSet(out)
}

export function parseJwtSvidResponse(msg: JWTSVIDResponse, audience: readonly string[]): JwtSvid[] {
  if (msg.svids.length === 0) throw malformed('MISSING_FIELD', 'JWTSVIDResponse has no svids')
  return msg.svids.map((m, i) => {
    const what = `JWTSVIDResponse svids[${i}]`
    if (m.svid === '') throw malformed('MISSING_FIELD', `${what}: mandatory field svid is empty`)
    const svid = wrap(what, () => JwtSvid.parseInsecure(m.svid, audience, m.hint))
    if (m.spiffeId !== '' && m.spiffeId !== svid.id.toString()) {
      throw malformed(
        'ID_MISMATCH',
        `${what}: spiffe_id ${m.spiffeId} differs from the token's sub ${svid.id}`,
      )
    }
    return svid
  })
}
