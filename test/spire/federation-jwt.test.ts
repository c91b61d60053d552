// JWT bundles of federated trust domains as a real SPIRE agent streams them (trap 12, case 38).
// A trust domain federated with `bundle set` from PEM has X.509 roots and no JWT keys; the agent
// still lists it in FetchJWTBundles. The source must hold it as a bundle that trusts no token,
// keep the own trust domain's keys, and not drop the message (parsing is all-or-nothing).
import t from 'tap'
import { JwtSource, JwtSvid, TrustDomain, WorkloadApiClient } from 'workload-api-client'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { Spire } from '../harness/spire.ts'
import { requireSpire } from '../harness/spire-available.ts'

if (requireSpire(t)) {
  t.test('spire: [C38] JWT bundles stream with a federated trust domain that has no JWT keys', async (t) => {
    const other = await Spire.start({ trustDomain: 'other.td', agent: false })
    t.teardown(() => other.close())
    const spire = await Spire.start({ agent: false })
    t.teardown(() => spire.close())
    await spire.setFederatedBundle('other.td', await other.bundlePem())
    await spire.createEntry({ spiffeId: 'spiffe://example.org/agent/fed-jwt', federatesWith: ['other.td'] })
    await spire.startAgent()
    await spire.waitForSvids(1)

    const source = new JwtSource({
      address: spire.endpoint,
      backoff: () => ({ next: () => 200, reset() {} }),
    })
    t.teardown(() => source.close())
    await source.waitReady(30_000)
    const own = source.getJwtBundleForTrustDomain(TrustDomain.parse('example.org'))
    t.ok(own !== undefined && own.authorities.size > 0, 'the own trust domain’s JWT keys are held')
    const foreign = source.getJwtBundleForTrustDomain(TrustDomain.parse('other.td'))
    t.ok(foreign !== undefined, 'other.td is held')
    t.equal(foreign?.authorities.size, 0, 'other.td trusts no JWT-SVID: its bundle has no JWT keys')

    // A token SPIRE minted for the own trust domain validates through the source.
    const token = await source.fetchJwtSvid({ audience: ['svc'] })
    t.equal(token.id.toString(), 'spiffe://example.org/agent/fed-jwt')
  })
}

if (requireSpire(t)) {
  t.test(
    'spire: [C35] a federated trust domain’s JWT-SVID validates with its keys from the stream, and only while federated',
    async (t) => {
      const other = await Spire.start({ trustDomain: 'other.td', agent: false })
      t.teardown(() => other.close())
      const spire = await Spire.start({ agent: false })
      t.teardown(() => spire.close())
      await spire.setFederatedSpiffeBundle('other.td', await other.bundleSpiffe())
      const entryId = await spire.createEntry({
        spiffeId: 'spiffe://example.org/agent/fed-jwt',
        federatesWith: ['other.td'],
      })
      await spire.startAgent()
      await spire.waitForSvids(1)

      const source = await JwtSource.create({
        address: spire.endpoint,
        backoff: () => ({ next: () => 200, reset() {} }),
      })
      t.teardown(() => source.close())
      const otherTd = TrustDomain.parse('other.td')
      t.ok(
        (source.getJwtBundleForTrustDomain(otherTd)?.authorities.size ?? 0) > 0,
        'other.td JWT keys arrived',
      )

      const foreign = await other.mintJwtSvid('spiffe://other.td/workload', 'svc')
      t.equal(JwtSvid.parseAndValidate(foreign, source, 'svc').id.toString(), 'spiffe://other.td/workload')
      // The agent agrees, with the same federated keys.
      const client = new WorkloadApiClient({ address: spire.endpoint })
      t.teardown(() => client.close())
      t.equal((await client.validateJwtSvid(foreign, 'svc')).id.toString(), 'spiffe://other.td/workload')

      // Once the entry stops federating, other.td leaves the stream and its tokens are untrusted.
      await spire.updateEntry(entryId, { federatesWith: [] })
      await waitFor(
        () => source.getJwtBundleForTrustDomain(otherTd) === undefined,
        'other.td to leave',
        30_000,
        100,
      )
      t.throws(() => JwtSvid.parseAndValidate(foreign, source, 'svc'), { code: 'SPIFFE_BUNDLE_NOT_FOUND' })
    },
  )
}
