// client → outbound svidecar → mTLS → inbound svidecar → app, with the dev Workload API.
import t from 'tap'
import { AGENT, startMesh } from './helpers/mesh.ts'
import { trafficSuite } from './helpers/traffic-suite.ts'

t.test('end to end over mTLS with the dev Workload API', async (t) => {
  trafficSuite(t, await startMesh(t))
})

t.test('the inbound listener refuses an agent it was not told to allow', async (t) => {
  const mesh = await startMesh(t, { allow: 'spiffe://example.org/somebody-else' })
  const seen = mesh.app.seen.length
  const res = await fetch(`${mesh.outboundUrl}/echo`, { method: 'POST', body: 'x' })
  t.equal(res.status, 502)
  t.equal(res.headers.get('x-svidecar-error'), 'SVD_UPSTREAM_RESET')
  t.equal(mesh.app.seen.length, seen, 'nothing reached the app')
})

t.test('an authorize list lets in a peer that any of its entries allows, and no other', async (t) => {
  const allowed = await startMesh(t, {
    authorize: `[{ pattern: "spiffe://example.org/ns/*/sa/*" }, { exact: "${AGENT}" }]`,
  })
  const ok = await fetch(`${allowed.outboundUrl}/echo`, { method: 'POST', body: 'x' })
  t.equal(ok.status, 200, 'the second entry allows the agent')
  await ok.text()
  const refused = await startMesh(t, {
    authorize: '[{ pattern: "spiffe://example.org/ns/*/sa/*" }, { trustDomain: partner.example }]',
  })
  const seen = refused.app.seen.length
  const res = await fetch(`${refused.outboundUrl}/echo`, { method: 'POST', body: 'x' })
  t.equal(res.status, 502)
  t.equal(res.headers.get('x-svidecar-error'), 'SVD_UPSTREAM_RESET')
  t.equal(refused.app.seen.length, seen, 'nothing reached the app')
})
