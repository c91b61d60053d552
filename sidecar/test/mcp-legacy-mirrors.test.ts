// Mirrored headers on a session-era request. No session-era client sends Mcp-Method or Mcp-Name (the SDK 2.x
// client sets them only on requests that claim 2026-07-28 in _meta), but a load balancer or a dual-era server that
// reads them would act on what they say: when present they must equal the body, as protocols.md §4.2's sidecar
// rule asks of every mirrored header, or the request is refused with 400 and HeaderMismatch (-32020) before it is
// forwarded. Matching headers pass.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import t from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { McpTestServer } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: echo
    effect: allow
    subjects: ["${AGENT}"]
    resources:
      - { kind: mcp.tool, name: echo }
      - { kind: mcp.resource, uri: "file:///public/**" }
`

t.test('session era: Mcp-Method and Mcp-Name, when sent, must equal the body', async (t) => {
  const upstream = await McpTestServer.start('json')
  t.teardown(() => upstream.close())
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const client = new Client({ name: 'agent', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(mesh.agentUrl))
  await client.connect(transport)
  t.teardown(() => client.close())
  const send = (headers: Record<string, string>, body: object) =>
    fetch(mesh.agentUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': transport.sessionId as string,
        'mcp-protocol-version': '2025-11-25',
        ...headers,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, ...body }),
    })
  const call = { method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } }
  const read = { method: 'resources/read', params: { uri: 'file:///public/readme.txt' } }

  const before = upstream.seen.length
  for (const [what, headers, body] of [
    ['another method', { 'mcp-method': 'tools/list' }, call],
    ['another tool', { 'mcp-method': 'tools/call', 'mcp-name': 'secret_tool' }, call],
    ['a name without its method', { 'mcp-name': 'secret_tool' }, call],
    ['another resource', { 'mcp-method': 'resources/read', 'mcp-name': 'file:///private/keys.txt' }, read],
    ['a malformed name', { 'mcp-method': 'tools/call', 'mcp-name': '=?base64?!!?=' }, call],
  ] as const) {
    const res = await send(headers, body)
    t.equal(res.status, 400, `${what}: refused`)
    t.equal(res.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_HEADER_MISMATCH', what)
    t.match(await res.json(), { jsonrpc: '2.0', error: { code: -32020 } }, what)
  }
  t.equal(upstream.seen.length, before, 'none of them reached the server')

  const same = await send({ 'mcp-method': 'tools/call', 'mcp-name': 'echo' }, call)
  t.equal(same.status, 200, 'headers that equal the body pass')
  t.match(await same.json(), { result: { content: [{ text: 'echo:x' }] } })
  const encoded = await send(
    {
      'mcp-method': 'resources/read',
      'mcp-name': `=?base64?${Buffer.from(read.params.uri).toString('base64')}?=`,
    },
    read,
  )
  t.equal(encoded.status, 200, 'a base64-encoded Mcp-Name is decoded before it is compared')
  await encoded.body?.cancel()
  t.same(
    await client.callTool({ name: 'echo', arguments: { text: 'sdk' } }),
    { content: [{ type: 'text', text: 'echo:sdk' }] },
    'the SDK 1.x client, which sends neither header, is unaffected',
  )
})
