// Federation without bundle endpoints (SPIRE's `spire-server bundle set`): a second SPIRE
// server for other.td whose roots are set on the first with `bundle set`.
import t from 'tap'
import { TrustDomain, verifyX509Svid, X509Source } from 'workload-api-client'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { Spire } from '../harness/spire.ts'
import { requireSpire } from '../harness/spire-available.ts'

if (requireSpire(t)) {
  t.test(
    '[C45] spire: a federated bundle follows -federatesWith, and leaves the stream when it is dropped',
    async (t) => {
      const other = await Spire.start({ trustDomain: 'other.td', agent: false })
      t.teardown(() => other.close())
      const spire = await Spire.start({ agent: false })
      t.teardown(() => spire.close())
      await spire.setFederatedBundle('other.td', await other.bundlePem())
      // Now that other.td's bundle exists, an entry may federate with it; then the agent.
      const entryId = await spire.createEntry({
        spiffeId: 'spiffe://example.org/agent/fed',
        federatesWith: ['other.td'],
      })
      await spire.startAgent()
      await spire.waitForSvids(1)

      const source = await X509Source.create({
        address: spire.endpoint,
        backoff: () => ({ next: () => 200, reset() {} }),
      })
      t.teardown(() => source.close())
      const otherTd = TrustDomain.parse('other.td')
      await waitFor(() => source.bundles.has(otherTd), 'the other.td bundle', 30_000, 100)

      // A peer of other.td, minted by its SPIRE server, verifies against the federated bundle.
      const peer = await other.mintX509Svid('spiffe://other.td/workload')
      t.equal(verifyX509Svid(peer, source).id.toString(), 'spiffe://other.td/workload')

      await spire.updateEntry(entryId, { federatesWith: [] })
      await waitFor(() => !source.bundles.has(otherTd), 'the other.td bundle to leave', 30_000, 100)
      t.throws(
        () => verifyX509Svid(peer, source),
        { code: 'SPIFFE_BUNDLE_NOT_FOUND' },
        'its peers are now refused',
      )
      t.ok(source.ready, 'the own SVID is unaffected')
    },
  )
}
