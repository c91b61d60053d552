// The hide style answers as the server would for a name it does not have (2025-11-25 server/utilities/completion:
// an unknown reference is invalid params). A completion for a hidden resource template must get the server's own
// answer to an unknown template, -32602, not the resource-not-found code of resources/read. The official SDK 1.x
// `McpServer` (Streamable HTTP) behind its sidecar, the SDK 1.x client behind another, mTLS between them.
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { McpError } from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'

const POLICY = `version: 1
rules:
  - id: public-docs
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.resource, uri: "docs://public/**" }]
`

async function templateServer(t: Test): Promise<string> {
  const sessions = new Map<string, StreamableHTTPServerTransport>()
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      let body: unknown
      if (req.method === 'POST') {
        const chunks: Buffer[] = []
        for await (const c of req) chunks.push(c as Buffer)
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      }
      const sid = req.headers['mcp-session-id']
      let transport = typeof sid === 'string' ? sessions.get(sid) : undefined
      if (transport === undefined) {
        const created = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          enableJsonResponse: true,
          onsessioninitialized: (id) => {
            sessions.set(id, created)
          },
        })
        transport = created
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
        await server.connect(transport)
      }
      await transport.handleRequest(req, res, body)
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end()
    })
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  t.teardown(async () => {
    for (const s of sessions.values()) await s.close()
    http.closeAllConnections()
    http.close()
  })
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`
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
