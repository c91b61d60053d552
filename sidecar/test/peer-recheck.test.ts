// A verified peer stays verified only while what verified it holds (cases 21 and 24): a keep-alive
// connection opened while the peer's trust domain was federated is closed when the bundle goes (the
// library re-verifies accepted connections on every update), and one whose peer SVID expired carries no
// further request (the identity stage re-verifies before each). Real sockets: the dev Workload API, a
// sidecar's inbound listener, and a Node https client with a keep-alive agent holding a partner SVID.
import { once } from 'node:events'
import { Agent, request } from 'node:https'
import { DevCa, DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { on, type TlsRejectedEvent } from '../src/observe/events.ts'
import { EchoApp } from './helpers/echo-app.ts'
import { MCP } from './helpers/mesh.ts'
import { startTestSidecar } from './helpers/test-sidecar.ts'

const PARTNER = 'spiffe://partner.example/agent'

async function setup(t: Test, leafTtlMs?: number) {
  const partner = DevCa.create({ trustDomain: 'partner.example' })
  const api = await DevWorkloadApi.start({
    workloads: [{ spiffeId: MCP, hint: 'mcp', federatesWith: ['partner.example'] }],
  })
  t.teardown(() => api.close())
  api.setFederatedBundle('partner.example', { x509: partner })
  const app = await EchoApp.start()
  t.teardown(() => app.close())
  const sidecar = await startTestSidecar(
    t,
    { socket: api.endpoint, hint: 'mcp' },
    `inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "${app.url}"
    authorize: { trustDomain: "partner.example" }
`,
  )
  await waitFor(() => sidecar.identity.current()?.bundles.has('partner.example') === true, 'federation')
  const svid = partner.issueX509Svid({
    spiffeId: PARTNER,
    ...(leafTtlMs === undefined ? {} : { ttlMs: leafTtlMs }),
  })
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 1,
    cert: svid.certChainPem,
    key: svid.keyPem,
    ca: api.bundlePem(),
    checkServerIdentity: () => undefined,
  })
  t.teardown(() => agent.destroy())
  const port = sidecar.addresses.inbound.public?.port ?? 0
  const get = async () => {
    const req = request({ host: '127.0.0.1', port, path: '/echo', agent })
    req.end()
    const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage]
    let body = ''
    for await (const chunk of res) body += chunk
    return { status: res.statusCode, body, reused: req.reusedSocket, socket: req.socket }
  }
  return { api, app, sidecar, svid, get }
}

t.test('[C24] a federated peer’s open connection is closed once its bundle is removed', async (t) => {
  const { api, app, sidecar, get } = await setup(t)
  const rejected: TlsRejectedEvent[] = []
  t.teardown(on('tlsRejected', (e) => rejected.push(e)))
  const first = await get()
  t.equal(first.status, 200, 'accepted while partner.example is federated')
  api.setFederatedBundle('partner.example', undefined)
  await waitFor(
    () => sidecar.identity.current()?.bundles.has('partner.example') === false,
    'the bundle to leave',
  )
  await waitFor(() => first.socket?.destroyed === true, 'the server to close the kept-alive connection')
  t.match(rejected, [
    { listener: 'public', direction: 'inbound', code: 'SVD_PEER_REJECTED', reason: 'UNKNOWN_AUTHORITY' },
  ])
  const seen = app.seen.length
  // A new connection is refused at its handshake (TLS 1.3: the client learns it on its first read).
  await t.rejects(get())
  t.equal(app.seen.length, seen, 'nothing reached the app')
})

t.test('[C21] a peer whose SVID expired mid-connection is refused on its next request', async (t) => {
  const { app, svid, get } = await setup(t, 3000)
  t.equal((await get()).status, 200)
  const notAfter = svid.certificates[0]?.validToDate.getTime() ?? 0
  await waitFor(() => Date.now() > notAfter + 1000, 'the peer SVID to expire', 10_000, 100)
  const seen = app.seen.length
  const late = await get()
  t.equal(late.reused, true, 'the same keep-alive connection')
  t.equal(late.status, 403)
  t.match(JSON.parse(late.body), { error: { code: 'SVD_PEER_REJECTED' } })
  t.equal(app.seen.length, seen, 'nothing reached the app')
})
