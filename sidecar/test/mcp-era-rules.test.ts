// What each MCP protocol era allows in a POST, checked with curl-shaped requests through the agent's sidecar to
// the server's (MCP lens inbound) in front of a real SDK 2.x server (`createMcpHandler`, both eras), and where the
// spec and that server agree, against the server's own answer to the same request:
// - 2026-07-28 Streamable HTTP "Protocol Version Header": a method the server does not implement is HTTP 404 with
//   JSON-RPC -32601; "Sending Messages": the body is a request or notification, never a response (-32600); the
//   MCP-Protocol-Version header must equal the body's `_meta` version (-32020), so neither an `initialize`
//   handshake nor a body without the version claim goes under a 2026-07-28 header; header rules are set for
//   requests only, and Mcp-Method is compared as sent (only Mcp-Name and Mcp-Param-* use the base64 form).
// - JSON-RPC 2.0: a message with an id is a request; no MCP request is named `notifications/*` (-32601).
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { toNodeHandler } from '@modelcontextprotocol/node'
import { createMcpHandler, fromJsonSchema, McpServer } from '@modelcontextprotocol/server'
import t, { type Test } from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'

const POLICY = `version: 1
rules:
  - id: echo
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }]
`

const MODERN = '2026-07-28'
// The per-request envelope a 2026-07-28 request carries (basic/transports/streamable-http "Request Metadata").
const META = {
  _meta: {
    'io.modelcontextprotocol/protocolVersion': MODERN,
    'io.modelcontextprotocol/clientInfo': { name: 'curl', version: '1.0.0' },
    'io.modelcontextprotocol/clientCapabilities': {},
  },
}

async function dualEraServer(t: Test): Promise<{ url: string; seen: Array<string | undefined> }> {
  const factory = () => {
    const server = new McpServer({ name: 'dual', version: '1.0.0' })
    const args = fromJsonSchema({ type: 'object', properties: { text: { type: 'string' } } })
    server.registerTool('echo', { description: 'echo', inputSchema: args }, (a) => ({
      content: [{ type: 'text', text: `echo:${String((a as { text?: string }).text ?? '')}` }],
    }))
    return server
  }
  const handle = toNodeHandler(createMcpHandler(factory))
  const seen: Array<string | undefined> = []
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      let body: { method?: string } | undefined
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        body = undefined
      }
      seen.push(body?.method)
      void handle(req as Parameters<typeof handle>[0], res, body)
    })
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  t.teardown(() => {
    http.closeAllConnections()
    http.close()
  })
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, seen }
}

interface Answer {
  status: number
  json: unknown
  refusal: string | null
}

async function post(url: string, body: unknown, headers: Record<string, string>): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(body),
  })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = text
  }
  return { status: res.status, json, refusal: res.headers.get('x-svidecar-upstream-error') }
}

const modernHeaders = (method: string, name?: string) => ({
  'mcp-protocol-version': MODERN,
  'mcp-method': method,
  ...(name === undefined ? {} : { 'mcp-name': name }),
})

t.test('2026-07-28: an unknown method is 404 with -32601, as the SDK 2.x server answers it', async (t) => {
  const upstream = await dualEraServer(t)
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const body = { jsonrpc: '2.0', id: 4, method: 'admin/shutdown', params: { ...META } }
  const direct = await post(`${upstream.url}/mcp`, body, modernHeaders('admin/shutdown'))
  t.equal(direct.status, 404, 'the server itself: 404')
  t.match(direct.json, { id: 4, error: { code: -32601 } })

  const before = upstream.seen.length
  const r = await post(mesh.agentUrl, body, modernHeaders('admin/shutdown'))
  t.equal(r.status, 404, 'the lens answers as the server would')
  t.match(r.json, { jsonrpc: '2.0', id: 4, error: { code: -32601 } })
  t.equal(r.refusal, 'SVD_MCP_DENIED')

  const named = await post(
    mesh.agentUrl,
    { jsonrpc: '2.0', id: 5, method: 'notifications/initialized', params: { ...META } },
    modernHeaders('notifications/initialized'),
  )
  t.equal(named.status, 404, 'a request named like a notification is an unknown method')
  t.match(named.json, { id: 5, error: { code: -32601 } })
  t.equal(upstream.seen.length, before, 'nothing reached the server')

  const allowed = await post(
    mesh.agentUrl,
    {
      jsonrpc: '2.0',
      id: 6,
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'x' }, ...META },
    },
    modernHeaders('tools/call', 'echo'),
  )
  t.equal(allowed.status, 200)
  t.match(allowed.json, { id: 6, result: { content: [{ text: 'echo:x' }] } })
})

t.test(
  'session era: a request named notifications/* is refused as an unknown method (200, -32601)',
  async (t) => {
    const upstream = await dualEraServer(t)
    const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
    const before = upstream.seen.length
    const r = await post(
      mesh.agentUrl,
      { jsonrpc: '2.0', id: 'n1', method: 'notifications/cancelled', params: { requestId: 1 } },
      { 'mcp-protocol-version': '2025-11-25' },
    )
    t.equal(r.status, 200)
    t.match(r.json, { id: 'n1', error: { code: -32601 } })
    t.equal(upstream.seen.length, before, 'not forwarded')
  },
)

t.test('2026-07-28: the body and the protocol-version header must name the same era', async (t) => {
  const upstream = await dualEraServer(t)
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const initialize = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'c', version: '1' } },
  }
  const direct = await post(`${upstream.url}/mcp`, initialize, modernHeaders('initialize'))
  t.equal(direct.status, 400, 'the server itself refuses initialize under a 2026-07-28 header')
  t.match(direct.json, { error: { code: -32020 } })

  const before = upstream.seen.length
  const cases: Array<[string, unknown, Record<string, string>, number]> = [
    ['initialize under a 2026-07-28 header', initialize, modernHeaders('initialize'), -32020],
    [
      'a request without the _meta version under a 2026-07-28 header',
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: {} } },
      modernHeaders('tools/call', 'echo'),
      -32020,
    ],
    [
      'a session-era header on a 2026-07-28 body',
      { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: {}, ...META } },
      { 'mcp-protocol-version': '2025-11-25', 'mcp-method': 'tools/call', 'mcp-name': 'echo' },
      -32020,
    ],
    [
      'Mcp-Method in the base64 form (only Mcp-Name and Mcp-Param-* use it)',
      { jsonrpc: '2.0', id: 4, method: 'ping', params: { ...META } },
      modernHeaders(`=?base64?${Buffer.from('ping').toString('base64')}?=`),
      -32020,
    ],
    [
      'a JSON-RPC response (2026-07-28 clients send none)',
      { jsonrpc: '2.0', id: 5, result: {} },
      { 'mcp-protocol-version': MODERN },
      -32600,
    ],
    [
      'a batch',
      [{ jsonrpc: '2.0', id: 6, method: 'ping', params: { ...META } }],
      modernHeaders('ping'),
      -32600,
    ],
  ]
  for (const [what, body, headers, code] of cases) {
    const r = await post(mesh.agentUrl, body, headers)
    t.equal(r.status, 400, what)
    t.match(r.json, { jsonrpc: '2.0', error: { code } }, what)
    t.match(r.refusal, /^SVD_MCP_(HEADER_MISMATCH|INVALID)$/, what)
  }
  t.equal(upstream.seen.length, before, 'nothing reached the server')
})

t.test(
  '2026-07-28: a notification needs no Mcp-Method (no header rule for notifications), but one sent must agree',
  async (t) => {
    const upstream = await dualEraServer(t)
    const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
    const note = { jsonrpc: '2.0', method: 'notifications/initialized', params: { ...META } }
    const direct = await post(`${upstream.url}/mcp`, note, { 'mcp-protocol-version': MODERN })
    t.equal(direct.status, 202, 'the server itself accepts it')

    const r = await post(mesh.agentUrl, note, { 'mcp-protocol-version': MODERN })
    t.equal(r.status, 202, 'accepted through the lens')
    t.equal(r.refusal, null)
    const wrong = await post(mesh.agentUrl, note, modernHeaders('notifications/cancelled'))
    t.equal(wrong.status, 400, 'an Mcp-Method that differs is still refused')
    t.equal(wrong.refusal, 'SVD_MCP_HEADER_MISMATCH')
  },
)
