// MCP-Protocol-Version through two sidecars, against the SDK 1.x server: every version the official SDK negotiates
// (SUPPORTED_PROTOCOL_VERSIONS, 2024-10-07 included) works end to end once initialize agreed on it, with its
// lists filtered; a version nobody speaks is refused 400 with UnsupportedProtocolVersion (-32022) listing what
// the sidecar reads, before it reaches the server. `svidecar mcp serve-stdio` accepts the same versions.
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js'
import t from 'tap'
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

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }

t.test(
  'every protocol version the SDK negotiates passes, lists filtered; an unknown one is 400',
  async (t) => {
    const upstream = await McpTestServer.start('json')
    t.teardown(() => upstream.close())
    const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
    for (const version of SUPPORTED_PROTOCOL_VERSIONS) {
      const init = await fetch(mesh.agentUrl, {
        method: 'POST',
        headers: HEADERS,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'v', version: '1' } },
        }),
      })
      t.equal(init.status, 200, `${version}: initialize`)
      t.match(await init.json(), { result: { protocolVersion: version } }, `${version}: the server agreed`)
      const session = init.headers.get('mcp-session-id') as string
      const list = await fetch(mesh.agentUrl, {
        method: 'POST',
        headers: { ...HEADERS, 'mcp-session-id': session, 'mcp-protocol-version': version },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      })
      t.equal(list.status, 200, `${version}: tools/list with the negotiated version header`)
      const body = (await list.json()) as { result?: { tools: Array<{ name: string }> } }
      t.same(
        body.result?.tools.map((x) => x.name),
        ['echo'],
        `${version}: filtered`,
      )
    }

    const before = upstream.seen.length
    const unknown = await fetch(mesh.agentUrl, {
      method: 'POST',
      headers: { ...HEADERS, 'mcp-protocol-version': '2099-01-01' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
    })
    t.equal(unknown.status, 400)
    t.equal(unknown.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_VERSION_UNSUPPORTED')
    const problem = (await unknown.json()) as { error: { code: number; data: { supported: string[] } } }
    t.equal(problem.error.code, -32022)
    for (const v of SUPPORTED_PROTOCOL_VERSIONS) t.ok(problem.error.data.supported.includes(v), `lists ${v}`)
    t.equal(upstream.seen.length, before, 'the unknown version never reached the server')
  },
)

t.test('serve-stdio: every protocol version the SDK negotiates is served after initialize', async (t) => {
  const bridge = await startBridge(t)
  for (const version of SUPPORTED_PROTOCOL_VERSIONS) {
    const init = await fetch(bridge.url, {
      method: 'POST',
      headers: HEADERS,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'v', version: '1' } },
      }),
    })
    t.equal(init.status, 200, `${version}: initialize`)
    await init.body?.cancel()
    const session = init.headers.get('mcp-session-id') as string
    const ping = await fetch(bridge.url, {
      method: 'POST',
      headers: { ...HEADERS, 'mcp-session-id': session, 'mcp-protocol-version': version },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    })
    t.equal(ping.status, 200, `${version}: ping with the negotiated version header`)
    await ping.body?.cancel()
  }
})
