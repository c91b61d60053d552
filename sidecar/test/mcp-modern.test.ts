// The stateless era (2026-07-28) with the official SDK 2.x packages: a `createMcpHandler` server behind its
// sidecar, a 2.x client that negotiates with `server/discover` behind another, mTLS between them. The client
// sends the mirrored headers itself; the lens checks them, decides every request and filters lists.

import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { toNodeHandler } from '@modelcontextprotocol/node'
import { createMcpHandler, fromJsonSchema, McpServer } from '@modelcontextprotocol/server'
import t, { type Test } from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'

const POLICY = `version: 1
rules:
  - id: modern-tools
    effect: allow
    subjects: ["${AGENT}"]
    resources:
      - { kind: mcp.tool, name: echo }
      - { kind: mcp.tool, name: explained }
      - { kind: mcp.resource, uri: "memo://public/**" }
      - { kind: mcp.prompt, name: greet }
  - id: no-explained
    effect: deny
    denyStyle: explain
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: explained }]
`

interface Seen {
  method: string | undefined
  headers: { method?: string | undefined; name?: string | undefined; version?: string | undefined }
}

async function modernServer(t: Test): Promise<{ url: string; seen: Seen[] }> {
  const factory = () => {
    const server = new McpServer({ name: 'modern', version: '1.0.0' })
    const args = fromJsonSchema({ type: 'object', properties: { text: { type: 'string' } } })
    for (const name of ['echo', 'explained', 'secret']) {
      server.registerTool(name, { description: `the ${name} tool`, inputSchema: args }, (a) => ({
        content: [{ type: 'text', text: `${name}:${String((a as { text?: string }).text ?? '')}` }],
      }))
    }
    for (const uri of ['memo://public/a', 'memo://private/b']) {
      server.registerResource(uri, uri, {}, () => ({ contents: [{ uri, text: `read ${uri}` }] }))
    }
    server.registerPrompt('greet', { description: 'hello' }, () => ({
      messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }],
    }))
    server.registerPrompt('admin', { description: 'no' }, () => ({
      messages: [{ role: 'user', content: { type: 'text', text: 'root' } }],
    }))
    return server
  }
  const handle = toNodeHandler(createMcpHandler(factory))
  const seen: Seen[] = []
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
      const h = (n: string) => req.headers[n] as string | undefined
      seen.push({
        method: body?.method,
        headers: { method: h('mcp-method'), name: h('mcp-name'), version: h('mcp-protocol-version') },
      })
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

t.test('SDK 2.x, 2026-07-28: discovery, filtered lists, allowed and denied calls', async (t) => {
  const upstream = await modernServer(t)
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const client = new Client(
    { name: 'modern-agent', version: '1.0.0' },
    { versionNegotiation: { mode: 'auto' } },
  )
  await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
  t.teardown(() => client.close())

  t.ok(
    upstream.seen.some((s) => s.method === 'server/discover'),
    'the client discovered the server through both sidecars',
  )
  t.same((await client.listTools()).tools.map((x) => x.name).sort(), ['echo', 'explained'])
  t.match(await client.callTool({ name: 'echo', arguments: { text: 'now' } }), {
    content: [{ type: 'text', text: 'echo:now' }],
  })
  const call = upstream.seen.find((s) => s.method === 'tools/call')
  t.match(call?.headers, { method: 'tools/call', name: 'echo', version: '2026-07-28' }, 'a modern request')
  try {
    await client.callTool({ name: 'secret', arguments: {} })
    t.fail('secret ran')
  } catch (err) {
    t.match(err, { code: -32602 }, 'hidden: unknown tool')
  }
  const explained = await client.callTool({ name: 'explained', arguments: {} })
  t.equal(explained.isError, true)
  t.match(explained.content, [{ type: 'text', text: /rule no-explained/ }])

  t.same(
    (await client.listResources()).resources.map((r) => r.uri),
    ['memo://public/a'],
  )
  t.match(await client.readResource({ uri: 'memo://public/a' }), {
    contents: [{ text: 'read memo://public/a' }],
  })
  try {
    await client.readResource({ uri: 'memo://private/b' })
    t.fail('a private resource was read')
  } catch (err) {
    t.match(err, { code: -32602 }, 'resource not found is -32602 in the stateless era')
  }
  t.same(
    (await client.listPrompts()).prompts.map((p) => p.name),
    ['greet'],
  )
  const names = upstream.seen.filter((s) => s.method === 'tools/call').map((s) => s.headers.name)
  t.same(names, ['echo'], 'no denied call reached the server')
})
