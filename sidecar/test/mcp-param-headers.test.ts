// Mcp-Param-* headers (2026-07-28, SEP-2243): a tool argument marked `x-mcp-header` is mirrored in a header a
// router may act on. Once the sidecar has seen the tool listed, a call whose mirrored header differs from its
// argument is refused with 400 and HeaderMismatch (-32020) before it is forwarded. With the official SDK 2.x
// client (which sends the headers itself) and server, through both sidecars; the mismatches are sent raw.

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { fromJsonSchema, McpServer } from '@modelcontextprotocol/server'
import t, { type Test } from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { modernMcpServer } from './helpers/mcp-servers.ts'

const POLICY = `version: 1
rules:
  - id: deploy
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: deploy }]
`
const VERSION = '2026-07-28'

async function deployServer(t: Test): Promise<{ url: string; calls: unknown[] }> {
  const calls: unknown[] = []
  const factory = () => {
    const server = new McpServer({ name: 'deployer', version: '1.0.0' })
    // `x-mcp-header` is a schema extension the JSON Schema type does not name.
    const schema = {
      type: 'object',
      properties: {
        region: { type: 'string', 'x-mcp-header': 'Region' },
        target: { type: 'object', properties: { replicas: { type: 'integer', 'x-mcp-header': 'Replicas' } } },
      },
    }
    const args = fromJsonSchema(schema as Parameters<typeof fromJsonSchema>[0])
    server.registerTool('deploy', { description: 'deploys', inputSchema: args }, (a) => {
      calls.push(a)
      return { content: [{ type: 'text', text: `deployed ${JSON.stringify(a)}` }] }
    })
    return server
  }
  const { url } = await modernMcpServer(t, factory)
  return { url, calls }
}

async function call(
  url: string,
  args: Record<string, unknown>,
  headers: Record<string, string>,
): Promise<{ status: number; body: { error?: { code?: number; message?: string } } }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': VERSION,
      'mcp-method': 'tools/call',
      'mcp-name': 'deploy',
      ...headers,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 9,
      method: 'tools/call',
      params: {
        _meta: {
          'io.modelcontextprotocol/protocolVersion': VERSION,
          'io.modelcontextprotocol/clientCapabilities': {},
          'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1.0.0' },
        },
        name: 'deploy',
        arguments: args,
      },
    }),
  })
  const text = await res.text()
  const data = text.startsWith('{') ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? '{}')
  return { status: res.status, body: JSON.parse(data) }
}

t.test('mirrored Mcp-Param-* headers must equal the arguments', async (t) => {
  const upstream = await deployServer(t)
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const client = new Client({ name: 'agent', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } })
  await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
  t.teardown(() => client.close())

  t.same(
    (await client.listTools()).tools.map((x) => x.name),
    ['deploy'],
    'the sidecar has seen the tool listed',
  )
  t.match(
    await client.callTool({ name: 'deploy', arguments: { region: 'eu-west', target: { replicas: 3 } } }),
    { content: [{ type: 'text', text: /eu-west/ }] },
    "the SDK's own headers agree with the body",
  )
  t.equal(upstream.calls.length, 1)

  const cases: Array<[string, Record<string, unknown>, Record<string, string>]> = [
    ['a header that differs', { region: 'eu-west' }, { 'mcp-param-region': 'us-east' }],
    ['a missing header', { region: 'eu-west' }, {}],
    ['a header without its argument', {}, { 'mcp-param-region': 'eu-west' }],
    [
      'a nested integer that differs',
      { region: 'eu', target: { replicas: 3 } },
      {
        'mcp-param-region': 'eu',
        'mcp-param-replicas': '4',
      },
    ],
    ['a malformed encoded value', { region: 'eu' }, { 'mcp-param-region': '=?base64?***?=' }],
  ]
  for (const [what, args, headers] of cases) {
    const r = await call(mesh.agentUrl, args, headers)
    t.equal(r.status, 400, `${what}: 400`)
    t.equal(r.body.error?.code, -32020, `${what}: HeaderMismatch`)
    // The agent's sidecar does not pass on the server sidecar's error header; the message is the sidecar's own.
    t.match(r.body.error?.message, /^the Mcp-Param-\w+ header /, `${what}: refused by the sidecar`)
  }
  t.equal(upstream.calls.length, 1, 'no mismatched call reached the server')

  const ok = await call(
    mesh.agentUrl,
    { region: ' zürich ', target: { replicas: 2 } },
    {
      'mcp-param-region': `=?base64?${Buffer.from(' zürich ').toString('base64')}?=`,
      'mcp-param-replicas': '2.0',
    },
  )
  t.equal(ok.status, 200, 'an encoded value and an integer written as 2.0 agree with the body')
  t.equal(upstream.calls.length, 2)
})
