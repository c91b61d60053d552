/**
 * The MCP server of the MCP call benchmark, as its own process: the official
 * SDK's McpServer over Streamable HTTP (sessions, JSON answers) with one
 * `echo` tool. With BENCH_TOOLS=N it is the SDK's low-level Server listing
 * N tools shaped like the lens benchmark's (bench/mcp.ts), `echo` first.
 * Prints its port, then serves until killed.
 */
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import { listedTools } from '../sidecar/test/helpers/tool-lists.ts'

const TOOLS = Number(process.env.BENCH_TOOLS ?? 0)
const listed = [
  { name: 'echo', description: 'answers ok', inputSchema: { type: 'object' as const, properties: {} } },
  ...listedTools(TOOLS).slice(1),
]

function serverFor(): { connect(t: StreamableHTTPServerTransport): Promise<void> } {
  if (TOOLS === 0) {
    const server = new McpServer({ name: 'bench-server', version: '1.0.0' })
    server.registerTool('echo', { description: 'answers ok' }, async () => ({
      content: [{ type: 'text', text: 'ok' }],
    }))
    return server
  }
  const server = new Server({ name: 'bench-server', version: '1.0.0' }, { capabilities: { tools: {} } })
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: listed }))
  server.setRequestHandler(CallToolRequestSchema, async () => ({ content: [{ type: 'text', text: 'ok' }] }))
  return server
}

const sessions = new Map<string, StreamableHTTPServerTransport>()
const http = createServer(async (req, res) => {
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
    await serverFor().connect(created)
  }
  await transport.handleRequest(req, res, body)
})
http.listen(0, '127.0.0.1')
await once(http, 'listening')
process.stdout.write(`${(http.address() as AddressInfo).port}\n`)
