// An upstream peer sidecar is verified at the handshake; a kept-alive
// connection can outlive the certificate it presented (X509-SVID §4.3: an
// SVID is valid until its NotAfter; security.md §1: a peer certificate
// expiring during a long connection is not re-checked by Node). The inbound
// side asks again before each request (tls/peer-recheck.ts); outbound, the
// pool whose connection holds a peer certificate about to expire is renewed
// then, so new requests go over a handshake with the peer's current SVID
// while requests in flight finish. Here the upstream's SVIDs live 3 s and
// the agent's an hour, from two Workload APIs sharing one CA, so nothing on
// the agent's side rotates.
import { DevCa, DevWorkloadApi } from '@svidecar/certs'
import t from 'tap'
import { Agent, request } from 'undici'
import { on, type TlsHandshakeEvent } from '../src/observe/events.ts'
import { EchoApp } from './helpers/echo-app.ts'
import { AGENT, MCP } from './helpers/mesh.ts'
import { startTestSidecar } from './helpers/test-sidecar.ts'

t.test('outbound: no request goes over a connection whose peer certificate has expired', async (t) => {
  const ca = DevCa.create({ trustDomain: 'example.org' })
  const agentApi = await DevWorkloadApi.start({ ca, workloads: [{ spiffeId: AGENT, hint: 'agent' }] })
  t.teardown(() => agentApi.close())
  const mcpApi = await DevWorkloadApi.start({
    ca,
    workloads: [{ spiffeId: MCP, hint: 'mcp', x509SvidTtlMs: 3000 }],
  })
  t.teardown(() => mcpApi.close())
  const app = await EchoApp.start()
  t.teardown(() => app.close())
  const server = await startTestSidecar(
    t,
    { socket: mcpApi.endpoint, hint: 'mcp' },
    `inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "${app.url}"
    authorize: { exact: "${AGENT}" }
`,
  )
  await server.identity.waitReady(5000)
  const agent = await startTestSidecar(
    t,
    { socket: agentApi.endpoint, hint: 'agent' },
    `outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: mcp }]
upstreams:
  mcp: { url: "https://127.0.0.1:${server.addresses.inbound.public?.port}", spiffe: { exact: "${MCP}" } }
`,
  )
  await agent.identity.waitReady(5000)
  const generation = agent.identity.current()?.generation
  const handshakes: TlsHandshakeEvent[] = []
  t.teardown(on('tlsHandshake', (e) => handshakes.push(e)))
  // The serial and expiry of each SVID the upstream's Workload API served, as the test goes.
  const expiry = new Map<string, number>()
  const note = () => {
    const svid = mcpApi.currentSvid(MCP)?.certificates[0]
    if (svid !== undefined) expiry.set(svid.serialNumber, svid.validToDate.getTime())
  }
  note()
  mcpApi.on('pushed', note)
  const client = new Agent({ connections: 1 })
  t.teardown(() => client.close())
  const url = `http://127.0.0.1:${agent.addresses.outbound.egress?.port}/echo`
  const failures: string[] = []
  const end = Date.now() + 7000
  let requests = 0
  while (Date.now() < end) {
    const sent = Date.now()
    const res = await request(url, { method: 'POST', body: 'x', dispatcher: client })
    await res.body.text()
    requests++
    if (res.statusCode !== 200) failures.push(`${res.statusCode} ${res.headers['x-svidecar-error']}`)
    // The connection this request used: the last outbound handshake before it was answered.
    const used = handshakes.filter((e) => e.direction === 'outbound' && e.listener === 'mcp').at(-1)
    const serial = used?.peerSerial
    const until = serial === undefined ? undefined : expiry.get(serial)
    // A request sent before the expiry may finish on its connection (in flight); none may start there after it.
    if (until !== undefined && sent > until) failures.push(`served over an expired peer SVID ${serial}`)
    await new Promise((r) => setTimeout(r, 25))
  }
  t.equal(agent.identity.current()?.generation, generation, 'the agent’s own identity did not change')
  t.ok(requests > 50, `${requests} requests`)
  t.same(failures.slice(0, 5), [], 'every request served, none over an expired peer certificate')
  const serials = new Set(handshakes.filter((e) => e.direction === 'outbound').map((e) => e.peerSerial))
  t.ok(serials.size >= 2, `new handshakes saw the upstream's renewed SVIDs (${serials.size})`)
})
