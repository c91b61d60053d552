// Names and URIs as real servers spell them, through two sidecars with the SDK 1.x client and server (JSON and SSE
// answers): a 1,000-tool list filtered by a glob, tool names with the characters 2025-11-25 allows beyond letters
// (`.`, `/`, `-`, `_`), rules that match names case-sensitively (`Echo` is not `echo`), and listed resource URIs
// whose dot segments (plain, %2e%2e, behind %2F) would leave the allowed root.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import {
  CallToolRequestSchema,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
  McpError,
} from '@modelcontextprotocol/sdk/types.js'
import t from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { serveMcp } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: named
    effect: allow
    subjects: ["${AGENT}"]
    resources:
      - { kind: mcp.tool, name: "ok_*" }
      - { kind: mcp.tool, name: echo }
      - { kind: mcp.tool, name: "ns.tool/v1" }
      - { kind: mcp.tool, name: "a-b_c.d" }
      - { kind: mcp.resource, uri: "file:///public/**" }
`
const SPECIAL = ['echo', 'Echo', 'ECHO', 'ns.tool/v1', 'ns.tool/v2', 'a-b_c.d', 'a-b_c.D']
const MANY = Array.from({ length: 1000 }, (_, i) => (i % 2 === 1 ? `ok_${i}` : `no_${i}`))
const URIS = [
  'file:///public/a',
  'file:///public/../private/b',
  'file:///public/%2e%2e/private/c',
  'file:///public%2F..%2Fprivate/d',
  'file:///private/e',
]

function server(): Server {
  const s = new Server({ name: 'names', version: '1.0.0' }, { capabilities: { tools: {}, resources: {} } })
  s.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: [...SPECIAL, ...MANY].map((name) => ({
      name,
      description: `the ${name} tool, described at some length as real servers do`,
      inputSchema: { type: 'object' as const, properties: { text: { type: 'string' } } },
    })),
  }))
  s.setRequestHandler(CallToolRequestSchema, (req) => ({
    content: [{ type: 'text' as const, text: `ran ${req.params.name}` }],
  }))
  s.setRequestHandler(ListResourcesRequestSchema, () => ({
    resources: URIS.map((uri) => ({ uri, name: uri })),
  }))
  return s
}

for (const mode of ['json', 'sse'] as const) {
  t.test(`names, case and URIs as listed and called (${mode} answers)`, async (t) => {
    const upstream = await serveMcp(t, { server, transport: () => ({ enableJsonResponse: mode === 'json' }) })
    const mesh = await startMcpMesh(t, { upstream, serverPolicy: POLICY })
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
    t.teardown(() => client.close())

    const listed = (await client.listTools()).tools.map((x) => x.name)
    t.same(
      listed.filter((n) => !n.startsWith('ok_')),
      ['echo', 'ns.tool/v1', 'a-b_c.d'],
      'only the exact names the rules give, in their case',
    )
    t.same(
      listed.filter((n) => n.startsWith('ok_')),
      MANY.filter((n) => n.startsWith('ok_')),
      'the 500 allowed of 1,000 tools, in order',
    )
    for (const name of ['ns.tool/v1', 'a-b_c.d', 'ok_999']) {
      t.same(await client.callTool({ name, arguments: {} }), {
        content: [{ type: 'text', text: `ran ${name}` }],
      })
    }
    for (const name of ['Echo', 'ECHO', 'a-b_c.D', 'ns.tool/v2', 'no_998']) {
      try {
        await client.callTool({ name, arguments: {} })
        t.fail(`${name} ran`)
      } catch (err) {
        t.type(err, McpError, name)
        t.equal((err as McpError).code, -32602, `${name}: unknown, as the hide style answers`)
      }
    }
    t.same(
      (await client.listResources()).resources.map((r) => r.uri),
      ['file:///public/a'],
      'listed URIs that resolve outside the root are left out',
    )
  })
}
