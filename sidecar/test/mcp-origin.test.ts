// Origin on MCP paths (2025-11-25 Streamable HTTP "Security Warning", protocols.md §4.1 and §9.2: validate Origin,
// invalid → 403). The agent's outbound listener is a loopback MCP endpoint that acts with the agent's SPIFFE ID, so
// a browser page from another site must not reach it: not by DNS rebinding (its POSTs carry the page's Origin) and
// not by a WebSocket, which browsers open to any host without asking. MCP agents send no Origin and loopback pages
// (the MCP Inspector on http://localhost:6274) are allowed; anything else is refused before it is forwarded, with or
// without a policy on the agent's sidecar.

import { once } from 'node:events'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import t from 'tap'
import { WebSocket } from 'ws'
import { on, type RequestEvent } from '../src/observe/events.ts'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { McpTestServer } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: echo
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }]
`

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'page', version: '1' } },
})

for (const agentPolicy of [POLICY, undefined]) {
  const where = agentPolicy === undefined ? "the server's sidecar" : "the agent's sidecar"
  t.test(`a foreign Origin is refused 403 on MCP paths (by ${where})`, async (t) => {
    const upstream = await McpTestServer.start('json')
    t.teardown(() => upstream.close())
    const mesh = await startMcpMesh(t, {
      upstream: upstream.url,
      serverPolicy: POLICY,
      ...(agentPolicy === undefined ? {} : { agentPolicy }),
    })
    const post = (origin: string) =>
      fetch(mesh.agentUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          origin,
        },
        body: INITIALIZE,
      })
    for (const origin of [
      'http://evil.example:15001',
      'null',
      'https://127.0.0.1.evil.example',
      'vscode-webview://x',
    ]) {
      const res = await post(origin)
      t.equal(res.status, 403, `${origin}: refused`)
      t.match(
        res.headers.get('x-svidecar-error') ?? res.headers.get('x-svidecar-upstream-error'),
        'SVD_MCP_ORIGIN_REFUSED',
      )
      t.match(
        await res.json(),
        { jsonrpc: '2.0', id: null, error: { code: -32600, message: /Origin/ } },
        origin,
      )
    }
    const requests: RequestEvent[] = []
    t.teardown(on('request', (e) => requests.push(e)))
    const ws = new WebSocket(mesh.agentUrl.replace(/^http/, 'ws'), 'mcp', { origin: 'https://evil.example' })
    ws.on('error', () => {})
    const [, res] = (await once(ws, 'unexpected-response')) as [
      unknown,
      { statusCode: number; resume(): void },
    ]
    res.resume()
    t.not(res.statusCode, 101, 'a WebSocket from a foreign page is refused')
    t.match(
      requests.find((e) => e.code === 'SVD_MCP_ORIGIN_REFUSED'),
      { status: 403, listener: agentPolicy === undefined ? 'public' : 'egress' },
      `refused by ${where}`,
    )
    ws.terminate()
    t.equal(upstream.seen.length, 0, 'nothing reached the server')

    for (const origin of ['http://localhost:6274', 'http://127.0.0.1:8080', 'http://[::1]:3000']) {
      const res = await post(origin)
      t.equal(res.status, 200, `${origin}: a loopback page may`)
      await res.body?.cancel()
    }
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
    t.teardown(() => client.close())
    t.same(
      (await client.listTools()).tools.map((x) => x.name),
      ['echo'],
      'an agent, which sends no Origin, is unaffected',
    )
  })
}
