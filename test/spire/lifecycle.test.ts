// Agent restarts and revocation against a real SPIRE agent. Its own SPIRE,
// because deleting the entry takes this process's identity away.
import t from 'tap'
import { X509Source } from 'workload-api-client'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { Spire } from '../harness/spire.ts'
import { requireSpire } from '../harness/spire-available.ts'

const ID = 'spiffe://example.org/agent/lifecycle'

if (requireSpire(t)) {
  const spire = await Spire.start({ entries: [{ spiffeId: ID, entryId: 'lifecycle-entry' }] })
  t.teardown(() => spire.close())

  // A quick reconnect, so the test sees the restarted agent at once rather than after a 1 s, 2 s ... wait.
  const backoff = () => ({ next: () => 200, reset: () => {} })

  t.test(
    '[C43] spire: an agent restart during a watch keeps the cached SVID and picks up the new stream',
    async (t) => {
      const source = await X509Source.create({ address: spire.endpoint, backoff })
      t.teardown(() => source.close())
      const before = source.getX509Svid()
      const updates = source.updateCount

      await spire.stopAgent()
      await waitFor(
        () => source.lastError?.code === 'SPIFFE_WLAPI_UNAVAILABLE',
        'the outage to be seen',
        15_000,
      )
      t.equal(source.ready, true, 'still ready while the agent is down')
      t.equal(source.getX509Svid().serialNumber, before.serialNumber, 'serving the cached SVID')

      await spire.startAgent()
      await waitFor(() => source.updateCount > updates, 'an update from the restarted agent', 30_000, 100)
      t.equal(source.ready, true)
      t.equal(source.lastError, undefined, 'the outage is over')
      t.equal(source.getX509Svid().id.toString(), ID)
    },
  )

  t.test(
    '[C42] spire: deleting the entry turns the source not ready and stops presenting the SVID',
    async (t) => {
      const source = await X509Source.create({ address: spire.endpoint, backoff })
      t.teardown(() => source.close())
      await spire.deleteEntry('lifecycle-entry')
      // Server entry cache reload plus agent sync: up to ~10 s.
      await waitFor(() => !source.ready, 'the source to drop its SVID', 30_000, 100)
      t.equal(source.lastError?.code, 'SPIFFE_WLAPI_NO_IDENTITY')
      t.equal(source.svid, undefined)
      t.throws(() => source.getX509Svid(), { code: 'SPIFFE_WLAPI_NO_IDENTITY' })
    },
  )
}
