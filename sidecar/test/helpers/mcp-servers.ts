/**
 * Official SDK MCP servers on 127.0.0.1:0 for tests that bring their own tools: a stateless 2.x
 * `createMcpHandler` (2026-07-28) and a 1.x Streamable HTTP server with a session per `initialize`. Each records
 * the JSON-RPC method of every POST that reached it, and is closed when the test ends.
 */
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { toNodeHandler } from '@modelcontextprotocol/node'
import type { McpServer as McpServerV1 } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { createMcpHandler, type McpServer } from '@modelcontextprotocol/server'
import type { Test } from 'tap'

/** Serves `handler` on 127.0.0.1:0 until the test ends; its base URL. */
export async function serveHttp(t: Test, handler: RequestListener): Promise<string> {
  const http = createServer(handler)
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  t.teardown(() => {
    http.closeAllConnections()
    http.close()
  })
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`
}

export interface ServedMcp<H> {
  url: string
  /** The `method` of every JSON-RPC POST body that reached the server, in order. */
  methods: string[]
  handler: H
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

function methodOf(body: unknown): string {
  return String((body as { method?: unknown } | undefined)?.method)
}

/** A stateless SDK 2.x server: `factory` builds the server for each request. */
export async function modernMcpServer(
  t: Test,
  factory: () => McpServer,
  options: Parameters<typeof createMcpHandler>[1] = {},
): Promise<ServedMcp<ReturnType<typeof createMcpHandler>>> {
  const handler = createMcpHandler(factory, options)
  const handle = toNodeHandler(handler)
  const methods: string[] = []
  const url = await serveHttp(t, async (req: IncomingMessage, res: ServerResponse) => {
    const body = req.method === 'POST' ? await readBody(req) : undefined
    if (body !== undefined) methods.push(methodOf(body))
    await handle(req as Parameters<typeof handle>[0], res, body)
  })
  return { url, methods, handler }
}

/** An SDK 1.x server over Streamable HTTP: `build` makes the server each new session connects to. */
export async function sessionMcpServer(
  t: Test,
  build: () => McpServerV1,
): Promise<ServedMcp<ReadonlyMap<string, StreamableHTTPServerTransport>>> {
  const sessions = new Map<string, StreamableHTTPServerTransport>()
  const methods: string[] = []
  const url = await serveHttp(t, async (req: IncomingMessage, res: ServerResponse) => {
    const body = req.method === 'POST' ? await readBody(req) : undefined
    if (body !== undefined) methods.push(methodOf(body))
    const sid = req.headers['mcp-session-id']
    let transport = typeof sid === 'string' ? sessions.get(sid) : undefined
    if (transport === undefined) {
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, created)
        },
      })
      transport = created
      await build().connect(created)
    }
    await transport.handleRequest(req, res, body)
  })
  t.teardown(async () => {
    for (const s of sessions.values()) await s.close()
  })
  return { url, methods, handler: sessions }
}
