// SPIFFE bundle endpoints against real SPIRE, both ways: our client and FederatedBundleSource fetch a
// SPIRE server's bundle endpoint (https_spiffe and https_web), and a SPIRE server federates with our
// BundleEndpointServer (https_spiffe, bootstrapped with `spire-server bundle set`).
import type { X509Certificate } from 'node:crypto'
import { DevCa, DevWorkloadApi, spiffeBundleDocument } from '@svidecar/certs'
import t from 'tap'
import {
  BundleEndpointServer,
  FederatedBundleSource,
  fetchSpiffeBundle,
  SpiffeBundle,
  TrustDomain,
  verifyX509Svid,
  X509Source,
} from 'workload-api-client'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { Spire } from '../harness/spire.ts'
import { requireSpire } from '../harness/spire-available.ts'

const td = TrustDomain.parse('example.org')
const SPIRE_SERVER_ID = 'spiffe://example.org/spire/server'

if (requireSpire(t)) {
  t.test(
    'spire: FederatedBundleSource follows a SPIRE bundle endpoint (https_spiffe, self-serving)',
    async (t) => {
      const spire = await Spire.start({ agent: false, bundleEndpoint: { profile: 'https_spiffe' } })
      t.teardown(() => spire.close())
      // The out-of-band bootstrap the spec asks for: SPIRE's own bundle in SPIFFE format.
      const initial = SpiffeBundle.parse(td, await spire.cli(['bundle', 'show', '-format', 'spiffe']))
      const url = `https://127.0.0.1:${spire.bundleEndpointPort}`
      const source = new FederatedBundleSource({
        endpoint: {
          trustDomain: td,
          url,
          profile: { type: 'https_spiffe', endpointSpiffeId: SPIRE_SERVER_ID },
        },
        initialBundle: initial,
        // The endpoint listens a moment after the server reports healthy.
        minRefreshMs: 200,
      })
      t.teardown(() => source.close())
      await source.waitFetched({ timeoutMs: 30_000 })
      const bundle = source.bundle as SpiffeBundle
      t.equal(bundle.refreshHintSeconds, 60, 'refresh_hint = "1m" from the SPIRE config')
      t.type(bundle.sequence, 'bigint', 'SPIRE numbers its bundles')
      t.same(
        bundle.x509.authorities.map((c) => c.fingerprint256),
        initial.x509.authorities.map((c) => c.fingerprint256),
        'the X.509 roots SPIRE holds',
      )
      t.ok(bundle.jwt.authorities.size > 0, 'and its JWT keys')
      t.equal(source.nextRefreshInMs, 60_000)

      const peer = await spire.mintX509Svid('spiffe://example.org/workload')
      t.equal(verifyX509Svid(peer, source).id.toString(), 'spiffe://example.org/workload')

      await t.rejects(
        fetchSpiffeBundle(
          {
            trustDomain: td,
            url,
            profile: { type: 'https_spiffe', endpointSpiffeId: 'spiffe://example.org/other' },
          },
          { endpointBundles: initial },
        ),
        { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED', reason: 'WRONG_SPIFFE_ID' },
        'SPIRE presents spiffe://example.org/spire/server, nothing else',
      )
    },
  )

  t.test('spire: fetchSpiffeBundle reads a SPIRE bundle endpoint served with https_web', async (t) => {
    const webCa = DevCa.create({ trustDomain: 'web.test', commonName: 'svidecar test web root' })
    const cert = webCa.issueX509Svid({ uriSans: [], dnsNames: ['localhost'] })
    const spire = await Spire.start({
      agent: false,
      bundleEndpoint: { profile: 'https_web', certPem: cert.certChainPem, keyPem: cert.keyPem },
    })
    t.teardown(() => spire.close())
    const endpoint = {
      trustDomain: td,
      url: `https://localhost:${spire.bundleEndpointPort}`,
      profile: { type: 'https_web' as const, ca: webCa.bundlePem() },
    }
    let bundle: SpiffeBundle | undefined
    await waitFor(
      async () => {
        bundle = await fetchSpiffeBundle(endpoint).catch(() => undefined)
        return bundle !== undefined
      },
      'the SPIRE bundle endpoint',
      30_000,
      200,
    )
    const expected = SpiffeBundle.parse(td, await spire.cli(['bundle', 'show', '-format', 'spiffe']))
    t.same(
      bundle?.x509.authorities.map((c) => c.fingerprint256),
      expected.x509.authorities.map((c) => c.fingerprint256),
    )
    await t.rejects(
      fetchSpiffeBundle({ ...endpoint, profile: { type: 'https_web' } }),
      { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED', reason: 'WEB_PKI' },
      'without the private root the certificate is not trusted',
    )
  })

  for (const setup of ['config', 'cli'] as const) {
    t.test(
      `spire: a SPIRE server federates with our bundle endpoint (https_spiffe, relationship by ${setup === 'config' ? 'federates_with in server.conf' : 'spire-server federation create'})`,
      async (t) => {
        const ourTd = TrustDomain.parse('our.td')
        const endpointId = 'spiffe://our.td/bundle-endpoint'
        const api = await DevWorkloadApi.start({
          trustDomain: 'our.td',
          workloads: [{ spiffeId: endpointId }],
        })
        t.teardown(() => api.close())
        const source = await X509Source.create({ address: api.endpoint, timeoutMs: 10_000 })
        t.teardown(() => source.close())
        // Roots published ahead of use (§4.1), as a CA rotation starts.
        const published: X509Certificate[] = []
        const server = await BundleEndpointServer.start({
          trustDomain: ourTd,
          bundle: () =>
            SpiffeBundle.parse(
              ourTd,
              spiffeBundleDocument({
                x509Authorities: [
                  ...(source.getX509BundleForTrustDomain(ourTd)?.authorities ?? []),
                  ...published,
                ],
                jwtIssuers: [api.jwtIssuer],
              }),
            ),
          profile: { type: 'https_spiffe', svidSource: source },
          path: '/bundle',
        })
        t.teardown(() => server.close())

        const spire = await Spire.start({
          agent: false,
          ...(setup === 'config'
            ? {
                federatesWith: [
                  { trustDomain: 'our.td', bundleEndpointUrl: server.url, endpointSpiffeId: endpointId },
                ],
              }
            : {}),
        })
        t.teardown(() => spire.close())
        // Bootstrap (§5.2.2.2): SPIRE must already hold our roots to authenticate our endpoint's SVID.
        await spire.setFederatedBundle('our.td', api.bundlePem())
        const held = async (): Promise<SpiffeBundle> =>
          SpiffeBundle.parse(
            ourTd,
            await spire.cli(['bundle', 'list', '-id', 'spiffe://our.td', '-format', 'spiffe']),
          )
        if (setup === 'cli') {
          t.equal((await held()).jwt.authorities.size, 0, 'the PEM bootstrap has no JWT keys')
          await spire.cli([
            'federation',
            'create',
            '-trustDomain',
            'our.td',
            '-bundleEndpointURL',
            server.url,
            '-bundleEndpointProfile',
            'https_spiffe',
            '-endpointSpiffeID',
            endpointId,
          ])
        }
        await waitFor(
          async () => {
            await spire.cli(['federation', 'refresh', '-id', 'spiffe://our.td']).catch(() => '')
            return (await held()).jwt.authorities.has(api.jwtIssuer.kid)
          },
          'SPIRE to fetch our bundle',
          30_000,
          500,
        )
        const roots = (): string[] =>
          [...(source.getX509BundleForTrustDomain(ourTd)?.authorities ?? []), ...published]
            .map((c) => c.fingerprint256)
            .sort()
        const fetched = await held()
        t.same(fetched.x509.authorities.map((c) => c.fingerprint256).sort(), roots(), 'our X.509 root')
        t.ok(
          fetched.jwt.authorities.has(api.jwtIssuer.kid),
          'and our JWT key, which only the endpoint served',
        )

        // A new root published on our side reaches SPIRE at its next refresh: our assigned sequence grew.
        published.push(DevCa.create({ trustDomain: 'our.td', commonName: 'next our.td root' }).root)
        await waitFor(
          async () => {
            await spire.cli(['federation', 'refresh', '-id', 'spiffe://our.td']).catch(() => '')
            return (await held()).x509.authorities.length === 2
          },
          'SPIRE to fetch the rotated bundle',
          30_000,
          500,
        )
        t.same((await held()).x509.authorities.map((c) => c.fingerprint256).sort(), roots())
      },
    )
  }
}
