// Lists across pagination cursors (2025-11-25 server/utilities/pagination): every page is filtered as it comes,
// `nextCursor` passes through untouched, and a page left empty is still a page. The official SDK 1.x server
// (paginating its tools/list) behind its sidecar, the SDK 1.x client behind another, mTLS between them, with JSON
// and with SSE answers.
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'

const POLICY = `version: 1
rules:
  - id: allowed
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: "ok_*" }]
`

const PAGES = [['ok_1', 'secret_1'], ['secret_2', 'secret_3'], ['ok_2']]

async function pagingServer(t: Test, json: boolean): Promise<string> {
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
          enableJsonResponse: json,
          onsessioninitialized: (id) => {
            sessions.set(id, created)
          },
        })
        transport = created
        const server = new Server({ name: 'pages', version: '1.0.0' }, { capabilities: { tools: {} } })
        server.setRequestHandler(ListToolsRequestSchema, (req) => {
          const page = Number(req.params?.cursor ?? '0')
          return {
            tools: (PAGES[page] ?? []).map((name) => ({ name, inputSchema: { type: 'object' as const } })),
            ...(page + 1 < PAGES.length ? { nextCursor: String(page + 1) } : {}),
          }
        })
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

for (const mode of ['json', 'sse'] as const) {
  t.test(`every page is filtered, cursors pass through (${mode} answers)`, async (t) => {
    const mesh = await startMcpMesh(t, {
      upstream: await pagingServer(t, mode === 'json'),
      serverPolicy: POLICY,
    })
    const client = new Client({ name: 'pager', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
    t.teardown(() => client.close())
    const pages: Array<{ names: string[]; next: string | undefined }> = []
    let cursor: string | undefined
    do {
      const page = await client.listTools(cursor === undefined ? {} : { cursor })
      pages.push({ names: page.tools.map((x) => x.name), next: page.nextCursor })
      cursor = page.nextCursor
    } while (cursor !== undefined && pages.length < 10)
    t.same(pages, [
      { names: ['ok_1'], next: '1' },
      { names: [], next: '2' },
      { names: ['ok_2'], next: undefined },
    ])
  })
}
