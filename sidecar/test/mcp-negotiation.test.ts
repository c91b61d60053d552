// Era detection (2026-07-28 basic/transports/streamable-http "Backward Compatibility"): a dual-era client tries a
// stateless request first (`server/discover`) and falls back to `initialize` on a 400 that carries no modern error.
// The official SDK 2.x client, negotiating on its own, through both sidecars (mTLS between them) to session-era
// servers: the SDK 1.x server, and server-everything over stdio behind `svidecar mcp serve-stdio`.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import t, { type Test } from 'tap'
import { startBridge } from './helpers/mcp-bridge.ts'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { McpTestServer } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: echo
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }]
`

async function dualEraClient(t: Test, url: string): Promise<Client> {
  const client = new Client({ name: 'dual-era', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } })
  await client.connect(new StreamableHTTPClientTransport(new URL(url)))
  t.teardown(() => client.close())
  return client
}

t.test('an SDK 2.x client falls back to the session era of an SDK 1.x server, lists filtered', async (t) => {
  const upstream = await McpTestServer.start('sse')
  t.teardown(() => upstream.close())
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const client = await dualEraClient(t, mesh.agentUrl)
  t.same(
    (await client.listTools()).tools.map((x) => x.name),
    ['echo'],
  )
  t.match(await client.callTool({ name: 'echo', arguments: { text: 'x' } }), {
    content: [{ type: 'text', text: 'echo:x' }],
  })
  t.same(
    upstream.seen.slice(0, 2).map((s) => s.method),
    ['server/discover', 'initialize'],
    'the probe reached the server, then the handshake',
  )
})

t.test('an SDK 2.x client falls back to the session era of serve-stdio', async (t) => {
  const bridge = await startBridge(t)
  const mesh = await startMcpMesh(t, {
    upstream: `http://127.0.0.1:${bridge.address.port}`,
    serverPolicy: POLICY,
  })
  const client = await dualEraClient(t, mesh.agentUrl)
  t.same(
    (await client.listTools()).tools.map((x) => x.name),
    ['echo'],
  )
  t.match(await client.callTool({ name: 'echo', arguments: { message: 'x' } }), {
    content: [{ type: 'text', text: 'Echo: x' }],
  })
})
