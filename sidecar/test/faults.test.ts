// The Workload API goes away during traffic and comes back; an SVID expires with no renewal.
import t from 'tap'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { startMesh } from './helpers/mesh.ts'

t.test(
  'the Workload API goes away: traffic continues on the cached SVIDs; when it returns, new SVIDs are used',
  async (t) => {
    const mesh = await startMesh(t)
    const before = mesh.agentSidecar.identity.current()?.svid.serialNumber
    await mesh.api.stop()
    await waitFor(
      () => mesh.agentSidecar.identity.lastError?.code === 'SPIFFE_WLAPI_UNAVAILABLE',
      'the outage to be noticed',
      15_000,
    )
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${mesh.outboundUrl}/during-outage-${i}`)
      t.equal(res.status, 200, `request ${i} during the outage`)
    }
    t.equal(mesh.agentSidecar.ready, true, 'still ready on the cached SVID')
    mesh.api.rotateNow()
    await mesh.api.resume()
    await waitFor(
      () => mesh.agentSidecar.identity.current()?.svid.serialNumber !== before,
      'the new SVID',
      15_000,
    )
    const res = await fetch(`${mesh.outboundUrl}/after`)
    t.equal(res.status, 200)
  },
)

t.test(
  '[C33] an SVID that expires with no renewal fails closed: 503 with its code, not ready, never plaintext',
  async (t) => {
    // 3 s SVIDs; the Workload API stops before the renewal.
    const mesh = await startMesh(t, { api: { x509SvidTtlMs: 3000 } })
    await mesh.api.stop()
    const svid = mesh.agentSidecar.identity.current()?.svid
    t.ok(svid)
    await waitFor(() => !mesh.agentSidecar.ready, 'the SVID to expire', 10_000)
    t.ok(Date.now() >= (svid?.notAfter.getTime() ?? 0), 'not before NotAfter')
    const res = await fetch(`${mesh.outboundUrl}/x`)
    t.equal(res.status, 503)
    t.equal(res.headers.get('x-svidecar-error'), 'SVD_IDENTITY_UNAVAILABLE')
    const { host, port } = mesh.agentSidecar.addresses.admin
    const ready = await fetch(`http://${host}:${port}/readyz`)
    t.equal(ready.status, 503)
    t.match(await ready.text(), /SVD_IDENTITY_UNAVAILABLE/)
    const metrics = await (await fetch(`http://${host}:${port}/metrics`)).text()
    t.match(metrics, /svidecar_ready 0/)
  },
)
