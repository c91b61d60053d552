// An escaped unreserved character in the path (`/%6Dcp` for `/mcp`, RFC 3986 §6.2.2.2) is that character: the
// MCP lens, which matches its paths as text, must see the path an MCP server that decodes it would serve. With the
// official SDK client: a policy that lets a subject reach any HTTP route but only one tool must not let the other
// tool run through an escaped spelling of the MCP path.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import t from 'tap'
import { AGENT, AGENT2, startMcpMesh } from './helpers/mcp-mesh.ts'
import { McpTestServer } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: any-route
    effect: allow
    subjects: ["${AGENT}", "${AGENT2}"]
    resources: [{ kind: http.route, path: /** }]
  - id: echo-only
    effect: allow
    subjects: ["${AGENT}", "${AGENT2}"]
    resources: [{ kind: mcp.tool, name: echo }]
`

t.test(
  'inbound: the MCP lens sees /%6Dcp as /mcp; a tool the policy does not allow stays refused',
  async (t) => {
    const upstream = await McpTestServer.start('json')
    t.teardown(() => upstream.close())
    const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
    const escaped = mesh.agentUrl.replace(/\/mcp$/, '/%6Dcp')
    t.equal(new URL(escaped).pathname, '/%6Dcp', 'the client sends the escape as it is')
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(escaped)))
    t.teardown(() => client.close())
    t.same(
      (await client.listTools()).tools.map((x) => x.name),
      ['echo'],
      'the list is filtered',
    )
    t.same(await client.callTool({ name: 'echo', arguments: { text: 'a' } }), {
      content: [{ type: 'text', text: 'echo:a' }],
    })
    const before = upstream.seen.length
    await t.rejects(client.callTool({ name: 'progress', arguments: {} }), 'the other tool is refused')
    t.notOk(
      upstream.seen.slice(before).some((m) => JSON.stringify(m).includes('"progress"')),
      'and never reached the server',
    )
  },
)

// A segment ends where some server ends it: at `;` (matrix parameters, dropped by Tomcat, Jetty and Spring before
// routing) and at an escaped slash or backslash (read as `/` by servers that decode before routing). The test
// server here serves every path as MCP, as such a server would serve these spellings.
for (const spelling of ['/mcp;x=1', '/mcp%2F', '/mcp%5c']) {
  t.test(
    `inbound: the MCP lens takes ${spelling} as /mcp; a tool the policy does not allow stays refused`,
    async (t) => {
      const upstream = await McpTestServer.start('json')
      t.teardown(() => upstream.close())
      const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
      const url = mesh.agentUrl.replace(/\/mcp$/, spelling)
      t.equal(new URL(url).pathname, spelling, 'the client sends the path as it is')
      const client = new Client({ name: 'agent', version: '1.0.0' })
      await client.connect(new StreamableHTTPClientTransport(new URL(url)))
      t.teardown(() => client.close())
      t.same(
        (await client.listTools()).tools.map((x) => x.name),
        ['echo'],
        'the list is filtered',
      )
      const before = upstream.seen.length
      await t.rejects(client.callTool({ name: 'progress', arguments: {} }), 'the other tool is refused')
      t.notOk(
        upstream.seen.slice(before).some((m) => JSON.stringify(m).includes('"progress"')),
        'and never reached the server',
      )
    },
  )
}
