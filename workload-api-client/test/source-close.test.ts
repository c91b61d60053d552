// After close() a source no longer follows the Workload API, so what it still holds is frozen: bundles that
// may have lost a revoked root or JWT key since. go-spiffe's sources answer every call after Close with "source
// is closed"; these do the same (SPIFFE_WLAPI_CLOSED) instead of verifying peers and tokens with stale keys.
import { DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import {
  isSpiffeError,
  JwtSource,
  JwtSvid,
  TrustDomain,
  verifyX509Svid,
  WorkloadApiClient,
  X509Source,
} from 'workload-api-client'

const TD = TrustDomain.parse('example.org')
const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: 'spiffe://example.org/w' }] })
t.teardown(() => api.close())

function closedError(t: Test, fn: () => unknown, what: string): void {
  let err: unknown
  try {
    fn()
  } catch (e) {
    err = e
  }
  t.ok(isSpiffeError(err, 'SPIFFE_WLAPI_CLOSED'), `${what}: SPIFFE_WLAPI_CLOSED`)
}

t.test('X509Source after close(): no SVID, no bundles, verification refused as closed', async (t) => {
  const source = await X509Source.create({ address: api.endpoint, timeoutMs: 10_000 })
  const svid = source.getX509Svid()
  t.ok(source.getX509BundleForTrustDomain(TD), 'a bundle while open')
  t.equal(verifyX509Svid(svid.certificates, source).id.toString(), 'spiffe://example.org/w')
  source.close()
  closedError(t, () => source.getX509Svid(), 'getX509Svid')
  closedError(t, () => source.getX509BundleForTrustDomain(TD), 'getX509BundleForTrustDomain')
  closedError(t, () => verifyX509Svid(svid.certificates, source), 'verifyX509Svid')
  t.equal(source.bundles.size, 0, 'the bundles getter holds nothing')
})

t.test('JwtSource after close(): tokens are no longer validated with the frozen keys', async (t) => {
  const client = new WorkloadApiClient({ address: api.endpoint })
  t.teardown(() => client.close())
  const token = (await client.fetchJwtSvid({ audience: 'a' })).token
  const source = await JwtSource.create({ address: api.endpoint, timeoutMs: 10_000 })
  t.equal(source.validate(token, 'a').id.toString(), 'spiffe://example.org/w', 'valid while open')
  source.close()
  closedError(t, () => source.validate(token, 'a'), 'validate')
  closedError(t, () => source.getJwtBundleForTrustDomain(TD), 'getJwtBundleForTrustDomain')
  closedError(t, () => JwtSvid.parseAndValidate(token, source, 'a'), 'parseAndValidate with the source')
  t.equal(source.bundles.size, 0, 'the bundles getter holds nothing')
})
