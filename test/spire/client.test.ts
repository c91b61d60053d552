// The Workload API client against a real SPIRE agent: the same behaviours
// the dev-server suite checks, now with SPIRE's own SVIDs, bundles and timing.
import { X509Certificate } from 'node:crypto'
import t from 'tap'
import {
  JwtSource,
  JwtSvid,
  TrustDomain,
  verifyX509Svid,
  WorkloadApiClient,
  X509Source,
  x509BundleSource,
} from 'workload-api-client'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { Spire } from '../harness/spire.ts'
import { requireSpire } from '../harness/spire-available.ts'

const TD = 'example.org'
const ROTATING = `spiffe://${TD}/agent/rotating`
const OTHER = `spiffe://${TD}/agent/other`

if (requireSpire(t)) {
  const spire = await Spire.start({
    entries: [
      // 20 s SVIDs: SPIRE renews at half the lifetime ± 10 %, so a rotation every ~10 s.
      { spiffeId: ROTATING, hint: 'rotating', x509SvidTtlSeconds: 20, jwtSvidTtlSeconds: 60 },
      { spiffeId: OTHER, hint: 'other' },
    ],
  })
  t.teardown(() => spire.close())
  const trustDomain = TrustDomain.parse(TD)

  t.test('spire: fetches the X.509 context and bundles SPIRE issued', async (t) => {
    const client = new WorkloadApiClient({ address: spire.endpoint })
    t.teardown(() => client.close())
    const ctx = await client.fetchX509Context({ timeoutMs: 10_000 })
    t.same(ctx.svids.map((s) => s.id.toString()).sort(), [ROTATING, OTHER].sort())
    t.same(ctx.svids.map((s) => s.hint).sort(), ['other', 'rotating'])
    const own = ctx.bundles.get(trustDomain)
    t.ok(own, 'own trust domain bundle present')
    // The bundle the agent streams is the server's: same roots as `spire-server bundle show`.
    const roots =
      (await spire.bundlePem()).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    t.same(
      own?.authorities.map((cert) => cert.fingerprint256).sort(),
      roots.map((pem) => new X509Certificate(pem).fingerprint256).sort(),
    )
    for (const svid of ctx.svids) {
      const { id } = verifyX509Svid(svid.certificates, x509BundleSource(ctx.bundles))
      t.equal(id.toString(), svid.id.toString(), `${svid.id} chains to SPIRE's root`)
    }
    const bundles = await client.fetchX509Bundles({ timeoutMs: 10_000 })
    t.ok(own && bundles.get(trustDomain)?.equals(own), 'FetchX509Bundles agrees with FetchX509SVID')
    const jwtBundles = await client.fetchJwtBundles({ timeoutMs: 10_000 })
    t.ok((jwtBundles.get(trustDomain)?.size ?? 0) > 0, 'JWT signing keys present')
  })

  t.test('[C40] [C10] spire: sources become ready and pick their SVID by hint', async (t) => {
    for (const [hint, id] of [
      ['rotating', ROTATING],
      ['other', OTHER],
    ] as const) {
      const source = await X509Source.create({ address: spire.endpoint, hint, timeoutMs: 30_000 })
      t.teardown(() => source.close())
      t.equal(source.getX509Svid().id.toString(), id)
    }
    const missing = new X509Source({ address: spire.endpoint, hint: 'nobody' })
    t.teardown(() => missing.close())
    await t.rejects(missing.waitReady({ timeoutMs: 2000 }), { code: 'SPIFFE_WLAPI_TIMEOUT' })
    t.equal(missing.lastError?.code, 'SPIFFE_WLAPI_SVID_NOT_FOUND', 'no fallback to another SVID')
  })

  t.test('spire: rotation is observed with 20 s SVIDs', async (t) => {
    const source = await X509Source.create({ address: spire.endpoint, hint: 'rotating' })
    t.teardown(() => source.close())
    const serials = new Set([source.getX509Svid().serialNumber])
    // SPIRE backdates NotBefore, so the TTL shows in the time left at receipt, not in NotAfter − NotBefore.
    let longestLeftMs = source.getX509Svid().notAfter.getTime() - Date.now()
    source.onUpdate((s) => {
      if (!s.svid || serials.has(s.svid.serialNumber)) return
      serials.add(s.svid.serialNumber)
      longestLeftMs = Math.max(longestLeftMs, s.svid.notAfter.getTime() - Date.now())
    })
    await waitFor(() => serials.size >= 3, 'two rotations', 45_000, 100)
    t.ok(serials.size >= 3, `saw ${serials.size} distinct SVIDs`)
    t.ok(longestLeftMs <= 20_000, `SPIRE honoured the 20 s TTL (longest ${longestLeftMs} ms left at receipt)`)
  })

  t.test('spire: JWT-SVIDs validate locally and through ValidateJWTSVID', async (t) => {
    const client = new WorkloadApiClient({ address: spire.endpoint })
    t.teardown(() => client.close())
    const jwt = new JwtSource({ client, hint: 'rotating' })
    t.teardown(() => jwt.close())
    await jwt.waitReady(10_000)

    const svid = await jwt.fetchJwtSvid({ audience: ['tools', 'models'] })
    t.equal(svid.id.toString(), ROTATING)
    t.same([...svid.audience].sort(), ['models', 'tools'])

    const local = jwt.validate(svid.token, 'tools')
    t.equal(local.id.toString(), ROTATING)
    t.throws(() => jwt.validate(svid.token, 'somebody-else'), {
      code: 'SPIFFE_JWT_INVALID',
      reason: 'AUDIENCE_MISMATCH',
    })
    const direct = JwtSvid.parseAndValidate(svid.token, jwt, 'models')
    t.equal(direct.id.toString(), ROTATING)

    const remote = await client.validateJwtSvid(svid.token, 'tools')
    t.equal(remote.id.toString(), ROTATING)
    await t.rejects(client.validateJwtSvid(svid.token, 'somebody-else'), {
      code: 'SPIFFE_WLAPI_INVALID_ARGUMENT',
    })

    // Ask by ID when the workload holds several identities.
    const other = await client.fetchJwtSvid({ audience: 'tools', spiffeId: OTHER })
    t.equal(other.id.toString(), OTHER)
    t.equal(
      (await jwt.fetchJwtSvid({ audience: ['models', 'tools'] })).token,
      svid.token,
      'cached until half-life',
    )
  })
}
