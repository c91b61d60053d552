// The whole way for a stdio-only agent and a stdio-only MCP server, with the dev Workload API:
// SDK client (stdio) → svidecar mcp connect → agent sidecar outbound → mTLS → server sidecar
// inbound → svidecar mcp serve-stdio → server-everything (stdio).
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { connectCommand, spawnConnect, startBridge, until } from './helpers/mcp-bridge.ts'
import { startTestSidecar } from './helpers/test-sidecar.ts'

const AGENT = 'spiffe://example.org/agent'
const MCP = 'spiffe://example.org/mcp'
// The agent's sidecar routes by host, as in deploy/examples/agent.yaml: connect names it with --header.
const HOST = ['--header', 'Host: mcp.internal']
const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '0' } },
})

/** The two sidecars of the mesh helper, with the server sidecar's inbound forwarding to `forwardTo`. */
async function mesh(t: Test, forwardTo: string, allow = AGENT): Promise<{ outboundUrl: string }> {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp' },
    ],
  })
  t.teardown(() => api.close())
  const server = await startTestSidecar(
    t,
    { socket: api.endpoint, hint: 'mcp' },
    `inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "${forwardTo}"
    authorize: { exact: "${allow}" }
`,
  )
  const agent = await startTestSidecar(
    t,
    { socket: api.endpoint, hint: 'agent' },
    `outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - match: { host: mcp.internal }
        upstream: mcp
upstreams:
  mcp:
    url: "https://127.0.0.1:${server.addresses.inbound.public?.port}"
    spiffe: { exact: "${MCP}" }
`,
  )
  await server.identity.waitReady(10_000)
  await agent.identity.waitReady(10_000)
  return { outboundUrl: `http://127.0.0.1:${agent.addresses.outbound.egress?.port}` }
}

t.test('a stdio agent uses a stdio MCP server across two sidecars and mTLS', async (t) => {
  const bridge = await startBridge(t)
  const { outboundUrl } = await mesh(t, `http://127.0.0.1:${bridge.address.port}`)
  const client = new Client({ name: 'stdio-agent', version: '1.0.0' })
  await client.connect(
    new StdioClientTransport({ ...connectCommand(`${outboundUrl}/mcp`, HOST), stderr: 'ignore' }),
  )
  t.teardown(() => client.close())
  t.equal(client.getServerVersion()?.name, 'mcp-servers/everything')
  const { tools } = await client.listTools()
  t.ok(tools.some((tool) => tool.name === 'echo'))
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'across the mesh' } })
  t.same(echo.content, [{ type: 'text', text: 'Echo: across the mesh' }])
  const progress: number[] = []
  await client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  )
  // The SDK's stdio client handles a progress notification a microtask after reading it but a
  // response at once: when the last progress and the result share one read, that progress is
  // dropped by the client itself. The exact stream order is asserted on raw lines below.
  t.same(progress, [1, 2, 3].slice(0, progress.length), 'progress in order')
  t.ok(progress.length >= 2, 'progress streamed across both sidecars before the result')
  await client.close()
  await until(() => bridge.sessionCount === 0, 'the remote session to end with the agent')
  t.pass('closing the agent ended the session behind the mesh')
})

t.test(
  'an agent the server sidecar does not admit gets an error naming the refusal, and no session starts',
  async (t) => {
    const bridge = await startBridge(t)
    const { outboundUrl } = await mesh(
      t,
      `http://127.0.0.1:${bridge.address.port}`,
      'spiffe://example.org/someone-else',
    )
    const client = new Client({ name: 'stdio-agent', version: '1.0.0' })
    const connecting = client.connect(
      new StdioClientTransport({ ...connectCommand(`${outboundUrl}/mcp`, HOST), stderr: 'ignore' }),
    )
    t.teardown(() => client.close())
    await t.rejects(connecting, { code: -31004, message: /HTTP 502: SVD_UPSTREAM_RESET/ })
    t.equal(bridge.sessionCount, 0, 'nothing reached the stdio server')
  },
)

t.test('progress and the result leave connect in the order the server sent them', async (t) => {
  const bridge = await startBridge(t)
  const { outboundUrl } = await mesh(t, `http://127.0.0.1:${bridge.address.port}`)
  const c = spawnConnect(t, `${outboundUrl}/mcp`, HOST)
  c.send(INIT)
  await c.next((m) => m.id === 0 && m.result !== undefined, 'the initialize result')
  c.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
  c.send(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: {
        name: 'trigger-long-running-operation',
        arguments: { duration: 0.3, steps: 3 },
        _meta: { progressToken: 'p1' },
      },
    }),
  )
  await c.next((m) => m.id === 1, 'the result')
  const order = c.lines
    .filter((m) => m.id === 1 || m.method === 'notifications/progress')
    .map((m) => (m.id === 1 ? 'result' : (m.params as { progress: number }).progress))
  t.same(order, [1, 2, 3, 'result'])
  c.closeStdin()
  t.equal(await c.exited, 0)
})

t.test('without the Host header the agent sidecar has no route: the agent is told so', async (t) => {
  const bridge = await startBridge(t)
  const { outboundUrl } = await mesh(t, `http://127.0.0.1:${bridge.address.port}`)
  const c = spawnConnect(t, `${outboundUrl}/mcp`)
  c.send(INIT)
  t.match(await c.next((m) => m.id === 0, 'the error'), {
    error: {
      code: -31004,
      data: { code: 'SVD_BRIDGE_UPSTREAM_FAILED', status: 404, svidecarError: 'SVD_ROUTE_NOT_FOUND' },
    },
  })
  c.closeStdin()
  t.equal(await c.exited, 0)
})
