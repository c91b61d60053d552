// Two sidecars with identities from a real SPIRE agent: traffic over mTLS,
// rotation under steady traffic, an agent restart, and revocation.
import t from 'tap'
import { AGENT, MCP, startSidecars } from '../../sidecar/test/helpers/mesh.ts'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { Spire } from '../harness/spire.ts'
import { requireSpire } from '../harness/spire-available.ts'

if (requireSpire(t)) {
  const spire = await Spire.start({
    entries: [
      // 20 s SVIDs: a rotation about every 10 s (SPIRE renews at half the lifetime).
      { spiffeId: AGENT, hint: 'agent', x509SvidTtlSeconds: 20, entryId: 'agent-entry' },
      { spiffeId: MCP, hint: 'mcp', x509SvidTtlSeconds: 20 },
    ],
  })
  t.teardown(() => spire.close())

  t.test('[C40] [C41] [C43] spire: traffic over mTLS survives rotations and an agent restart', async (t) => {
    const mesh = await startSidecars(t, spire.endpoint, { readyTimeoutMs: 30_000 })
    const agentSerials = new Set<string>()
    const serverSerials = new Set<string>()
    const note = () => {
      const a = mesh.agentSidecar.identity.current()?.svid.serialNumber
      const s = mesh.serverSidecar.identity.current()?.svid.serialNumber
      if (a) agentSerials.add(a)
      if (s) serverSerials.add(s)
    }
    let ok = 0
    const failures: string[] = []
    let peerSeen = ''
    let stop = false
    // Steady traffic: one request after another, new connections included (the pool renews on rotation).
    const traffic = (async () => {
      while (!stop) {
        try {
          const res = await fetch(`${mesh.outboundUrl}/anything`)
          const body = (await res.json()) as { peer?: string }
          if (res.status === 200) {
            ok++
            peerSeen = body.peer ?? ''
          } else failures.push(`${res.status} ${res.headers.get('x-svidecar-error')}`)
        } catch (err) {
          failures.push(String(err))
        }
        note()
        await new Promise((r) => setTimeout(r, 20))
      }
    })()

    await waitFor(
      () => agentSerials.size >= 3 && serverSerials.size >= 3,
      'two rotations on both sides',
      60_000,
      100,
    )
    await spire.stopAgent()
    const during = ok
    await waitFor(() => ok > during + 20, 'traffic on the cached SVIDs while the agent is down', 10_000, 50)
    const before = agentSerials.size
    await spire.startAgent()
    await waitFor(() => agentSerials.size > before, 'a new SVID from the restarted agent', 30_000, 100)
    stop = true
    await traffic

    t.equal(peerSeen, AGENT, 'the app sees the agent’s SPIRE-issued identity')
    t.ok(ok > 100, `${ok} requests succeeded`)
    t.same(failures, [], 'no request failed across rotations and the agent restart')
  })

  t.test(
    '[C42] spire: deleting the agent’s entry turns its sidecar not ready; requests fail closed',
    async (t) => {
      const mesh = await startSidecars(t, spire.endpoint, { readyTimeoutMs: 30_000 })
      const res = await fetch(`${mesh.outboundUrl}/x`)
      t.equal(res.status, 200)
      await spire.deleteEntry('agent-entry')
      await waitFor(() => !mesh.agentSidecar.ready, 'the agent sidecar to lose its identity', 30_000, 100)
      const refused = await fetch(`${mesh.outboundUrl}/x`)
      t.equal(refused.status, 503)
      t.equal(refused.headers.get('x-svidecar-error'), 'SVD_IDENTITY_UNAVAILABLE')
      const admin = mesh.agentSidecar.addresses.admin
      const ready = await fetch(`http://${admin.host}:${admin.port}/readyz`)
      t.equal(ready.status, 503, '/readyz says not ready')
    },
  )
}
