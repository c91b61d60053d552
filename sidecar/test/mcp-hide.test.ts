import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { McpError } from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { serveMcp } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: public-docs
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.resource, uri: "docs://public/**" }]
`

function templateServer(t: Test): Promise<string> {
  return serveMcp(t, {
    transport: () => ({ enableJsonResponse: true }),
    server: () => {
      const server = new McpServer({ name: 'templates', version: '1.0.0' })
      for (const area of ['public', 'private']) {
        server.registerResource(
          area,
          new ResourceTemplate(`docs://${area}/{name}`, {
            list: undefined,
            complete: { name: (value) => ['readme', 'notes'].filter((n) => n.startsWith(value)) },
          }),
          {},
          (uri) => ({ contents: [{ uri: uri.href, text: `${area} doc` }] }),
        )
      }
      return server
    },
  })
}

async function code(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p
    return undefined
  } catch (err) {
    return (err as McpError).code
  }
}

t.test('a completion for a hidden resource template gets the answer for an unknown template', async (t) => {
  const upstream = await templateServer(t)
  const direct = new Client({ name: 'direct', version: '1.0.0' })
  await direct.connect(new StreamableHTTPClientTransport(new URL(`${upstream}/mcp`)))
  t.teardown(() => direct.close())
  const unknownRef = { type: 'ref/resource' as const, uri: 'docs://nowhere/{name}' }
  const argument = { name: 'name', value: 'r' }
  const serverSays = await code(direct.complete({ ref: unknownRef, argument }))
  t.equal(serverSays, -32602, 'the server answers an unknown template with invalid params')

  const mesh = await startMcpMesh(t, { upstream, serverPolicy: POLICY })
  const agent = new Client({ name: 'agent', version: '1.0.0' })
  await agent.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
  t.teardown(() => agent.close())
  t.same(
    (await agent.complete({ ref: { type: 'ref/resource', uri: 'docs://public/{name}' }, argument }))
      .completion.values,
    ['readme'],
    'an allowed template completes',
  )
  t.equal(
    await code(agent.complete({ ref: { type: 'ref/resource', uri: 'docs://private/{name}' }, argument })),
    serverSays,
    'a hidden template is answered as an unknown one',
  )
  t.same(
    (await agent.listResourceTemplates()).resourceTemplates.map((x) => x.uriTemplate),
    ['docs://public/{name}'],
    'and left out of the template list',
  )
})
