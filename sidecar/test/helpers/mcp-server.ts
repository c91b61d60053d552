/**
 * A real MCP server for tests: the official SDK 1.x low-level `Server` over
 * its `StreamableHTTPServerTransport` (stateful sessions), answering either
 * with JSON bodies or with SSE streams. It offers tools, resources,
 * templates, prompts and completions with names the test policies allow or
 * deny, and records every JSON-RPC message that reached it, so a test can
 * assert that nothing refused got through.
 */
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import {
  StreamableHTTPServerTransport,
  type StreamableHTTPServerTransportOptions,
} from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
} from '@modelcontextprotocol/sdk/types.js'

export const TOOLS = ['echo', 'progress', 'write_file', 'secret_tool', 'explained_tool', 'forbidden_tool']
export const RESOURCES = ['file:///public/readme.txt', 'file:///private/keys.txt']
export const TEMPLATES = ['file:///public/{name}', 'file:///private/{name}']
export const PROMPTS = ['greet', 'admin_prompt']

export interface SeenMessage {
  method?: string
  name?: string
  uri?: string
  batch: boolean
  /** The Mcp-Session-Id the request arrived with. */
  sessionId?: string
}

const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] })

/** The test server's tools, resources and prompts on a fresh SDK `Server`, for any transport. */
export function mcpServer(describe: (name: string) => string = (name) => `the ${name} tool`): Server {
  const server = new Server(
    { name: 'svidecar-test-server', version: '1.0.0' },
    { capabilities: { tools: {}, resources: {}, prompts: {}, completions: {} } },
  )
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: TOOLS.map((name) => ({
      name,
      description: describe(name),
      inputSchema: {
        type: 'object' as const,
        properties: { text: { type: 'string' }, path: { type: 'string' } },
      },
    })),
  }))
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const args = (req.params.arguments ?? {}) as Record<string, unknown>
    if (!TOOLS.includes(req.params.name)) {
      return { ...text(`no tool ${req.params.name}`), isError: true }
    }
    if (req.params.name === 'progress') {
      const token = req.params._meta?.progressToken
      for (let i = 1; i <= 3; i++) {
        if (token !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress: i, total: 3 },
          })
        }
      }
      return text('done')
    }
    return text(`${req.params.name}:${String(args.text ?? args.path ?? '')}`)
  })
  server.setRequestHandler(ListResourcesRequestSchema, () => ({
    resources: RESOURCES.map((uri) => ({ uri, name: uri.split('/').at(-1) ?? uri })),
  }))
  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
    resourceTemplates: TEMPLATES.map((uriTemplate) => ({ uriTemplate, name: uriTemplate })),
  }))
  server.setRequestHandler(ReadResourceRequestSchema, (req) => ({
    contents: [{ uri: req.params.uri, text: `contents of ${req.params.uri}` }],
  }))
  server.setRequestHandler(ListPromptsRequestSchema, () => ({ prompts: PROMPTS.map((name) => ({ name })) }))
  server.setRequestHandler(GetPromptRequestSchema, (req) => ({
    messages: [
      { role: 'user' as const, content: { type: 'text' as const, text: `prompt ${req.params.name}` } },
    ],
  }))
  server.setRequestHandler(CompleteRequestSchema, () => ({
    completion: { values: ['alpha', 'beta'], hasMore: false },
  }))
  return server
}

export class McpTestServer {
  readonly seen: SeenMessage[] = []
  readonly #http: HttpServer
  readonly #sessions = new Map<string, StreamableHTTPServerTransport>()
  readonly #json: boolean
  readonly #descriptions = new Map<string, string>()

  private constructor(json: boolean) {
    this.#json = json
    this.#http = createServer((req, res) => {
      this.#handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500).end()
      })
    })
  }

  /** `json`: answer POSTs with JSON bodies; otherwise with SSE streams. */
  static async start(mode: 'json' | 'sse'): Promise<McpTestServer> {
    const s = new McpTestServer(mode === 'json')
    s.#http.listen(0, '127.0.0.1')
    await once(s.#http, 'listening')
    return s
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#http.address() as AddressInfo).port}`
  }

  /** Changes what tools/list says a tool does (a server swapping a tool under an approved name). */
  describe(tool: string, description: string): void {
    this.#descriptions.set(tool, description)
  }

  /** The methods (and tool names) that reached the server, in order. */
  calls(method?: string): SeenMessage[] {
    return method === undefined ? this.seen : this.seen.filter((m) => m.method === method)
  }

  async close(): Promise<void> {
    for (const t of this.#sessions.values()) await t.close()
    this.#http.closeAllConnections()
    this.#http.close()
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: unknown
    if (req.method === 'POST') {
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      const raw = Buffer.concat(chunks).toString('utf8')
      try {
        body = JSON.parse(raw)
      } catch {
        body = undefined
      }
      const list = Array.isArray(body) ? body : [body]
      for (const m of list) {
        const msg = (m ?? {}) as { method?: string; params?: { name?: string; uri?: string } }
        const session = req.headers['mcp-session-id']
        this.seen.push({
          batch: Array.isArray(body),
          ...(typeof session === 'string' ? { sessionId: session } : {}),
          ...(msg.method === undefined ? {} : { method: msg.method }),
          ...(msg.params?.name === undefined ? {} : { name: msg.params.name }),
          ...(msg.params?.uri === undefined ? {} : { uri: msg.params.uri }),
        })
      }
    }
    const sid = req.headers['mcp-session-id']
    let transport = typeof sid === 'string' ? this.#sessions.get(sid) : undefined
    if (transport === undefined) {
      if (typeof sid === 'string') {
        res.writeHead(404, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }),
        )
        return
      }
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: this.#json,
        onsessioninitialized: (id) => {
          this.#sessions.set(id, created)
        },
      })
      transport = created
      await mcpServer((name) => this.#descriptions.get(name) ?? `the ${name} tool`).connect(transport)
    }
    await transport.handleRequest(req, res, body)
  }
}

/**
 * An MCP server of the test's own over Streamable HTTP with sessions, on a loopback port closed at teardown:
 * each session gets a new `server()` and a transport with `transport()`'s options; `onRequest` sees each request
 * first. Its URL.
 */
export async function serveMcp(
  t: { teardown(fn: () => unknown): void },
  o: {
    server: () => { connect(transport: StreamableHTTPServerTransport): Promise<void> }
    transport?: () => Omit<
      StreamableHTTPServerTransportOptions,
      'sessionIdGenerator' | 'onsessioninitialized'
    >
    onRequest?: (req: IncomingMessage) => void
  },
): Promise<string> {
  const sessions = new Map<string, StreamableHTTPServerTransport>()
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      let body: unknown
      if (req.method === 'POST') {
        const chunks: Buffer[] = []
        for await (const c of req) chunks.push(c as Buffer)
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      }
      o.onRequest?.(req)
      const sid = req.headers['mcp-session-id']
      let transport = typeof sid === 'string' ? sessions.get(sid) : undefined
      if (transport === undefined) {
        const created = new StreamableHTTPServerTransport({
          ...o.transport?.(),
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => {
            sessions.set(id, created)
          },
        })
        transport = created
        await o.server().connect(transport)
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
