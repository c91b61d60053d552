// JSON-RPC request ids need only be unique among a client's outstanding requests, and "MUST NOT have been
// previously used by the requestor within the same session" (2025-11-25 basic "Requests") binds the client, which
// is free to break it. On the channels where every answer of a session arrives on one stream (HTTP+SSE,
// 2024-11-05) or one socket (WebSocket), a client that sends two list requests under one id must not get either
// answer unfiltered because the other used up the lens's record of the id. The official SDK 1.x server over its
// SSEServerTransport (and over a WebSocket transport written here with `ws`, as no MCP revision defines one)
// behind its sidecar; the client is raw (no SDK client reuses ids on purpose).
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import {
  type JSONRPCMessage,
  ListPromptsRequestSchema,
  ListToolsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'

const POLICY = `version: 1
rules:
  - id: echo
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }, { kind: mcp.prompt, name: greet }]
`

/** An SDK server whose list answers wait until `lists` list requests have arrived, so all are outstanding. */
function latchedServer(lists: number): Server {
  let arrived = 0
  let release: () => void = () => {}
  const all = new Promise<void>((resolve) => {
    release = resolve
  })
  const arrive = async () => {
    if (++arrived >= lists) release()
    await all
  }
  const server = new Server(
    { name: 'latched', version: '1.0.0' },
    { capabilities: { tools: {}, prompts: {} } },
  )
  server.setRequestHandler(ListToolsRequestSchema, async () => {
    await arrive()
    return {
      tools: ['echo', 'secret_tool'].map((name) => ({ name, inputSchema: { type: 'object' as const } })),
    }
  })
  server.setRequestHandler(ListPromptsRequestSchema, async () => {
    await arrive()
    return { prompts: [{ name: 'greet' }, { name: 'admin_prompt' }] }
  })
  return server
}

async function sseServer(t: Test, lists: number): Promise<string> {
  const transports = new Map<string, SSEServerTransport>()
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x')
      if (req.method === 'GET' && url.pathname === '/sse') {
        const transport = new SSEServerTransport('/message', res)
        transports.set(transport.sessionId, transport)
        await latchedServer(lists).connect(transport)
        return
      }
      const transport = transports.get(url.searchParams.get('sessionId') ?? '')
      if (req.method === 'POST' && transport !== undefined) {
        await transport.handlePostMessage(req, res)
        return
      }
      res.writeHead(404).end()
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end()
    })
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  t.teardown(async () => {
    for (const s of transports.values()) await s.close()
    http.closeAllConnections()
    http.close()
  })
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`
}

/** Opens the HTTP+SSE stream through `url`; `next(match)` waits for a message on it. */
async function openStream(t: Test, url: string) {
  const control = new AbortController()
  t.teardown(() => control.abort())
  const res = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: control.signal })
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  const events: Array<{ event: string; data: string }> = []
  const next = async (match: (e: { event: string; data: string }) => boolean) => {
    for (;;) {
      const found = events.findIndex(match)
      if (found !== -1) return events.splice(found, 1)[0] as { event: string; data: string }
      const { value, done } = await reader.read()
      if (done) throw new Error('the stream ended')
      buffer += decoder.decode(value, { stream: true })
      let at = buffer.indexOf('\n\n')
      while (at !== -1) {
        let event = 'message'
        const data: string[] = []
        for (const line of buffer.slice(0, at).split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim()
          else if (line.startsWith('data:')) data.push(line.slice(5).trimStart())
        }
        events.push({ event, data: data.join('\n') })
        buffer = buffer.slice(at + 2)
        at = buffer.indexOf('\n\n')
      }
    }
  }
  return { status: res.status, next }
}

t.test('HTTP+SSE: two list requests under one id are both answered filtered', async (t) => {
  const upstream = await sseServer(t, 2)
  const mesh = await startMcpMesh(t, {
    upstream,
    serverPolicy: POLICY,
    mcpPath: '/sse',
    serverMcp: '{ paths: [/sse, /message] }',
  })
  const stream = await openStream(t, mesh.agentUrl)
  t.equal(stream.status, 200)
  const endpoint = (await stream.next((e) => e.event === 'endpoint')).data
  const post = new URL(endpoint, mesh.agentUrl)
  const send = (body: unknown) =>
    fetch(post, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).then(async (r) => {
      await r.body?.cancel()
      return r.status
    })
  const init = await send({
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  })
  t.equal(init, 202)
  await stream.next((e) => e.data.includes('"id":0'))

  // The same id for a tools/list and a prompts/list, both outstanding when their answers come.
  t.same(
    await Promise.all([
      send({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
      send({ jsonrpc: '2.0', id: 7, method: 'prompts/list' }),
    ]),
    [202, 202],
  )
  const answers = [
    JSON.parse((await stream.next((e) => e.data.includes('"id":7'))).data),
    JSON.parse((await stream.next((e) => e.data.includes('"id":7'))).data),
  ] as Array<{ result: { tools?: Array<{ name: string }>; prompts?: Array<{ name: string }> } }>
  const tools = answers.find((a) => a.result.tools !== undefined)
  const prompts = answers.find((a) => a.result.prompts !== undefined)
  t.same(
    tools?.result.tools?.map((x) => x.name),
    ['echo'],
    'the tools answer is filtered',
  )
  t.same(
    prompts?.result.prompts?.map((x) => x.name),
    ['greet'],
    'the prompts answer is filtered',
  )
})

/** The server end of one socket as an MCP transport (one JSON-RPC message per text frame). */
class SocketTransport implements Transport {
  readonly #ws: WebSocket
  onmessage?: (message: JSONRPCMessage) => void
  onclose?: () => void
  onerror?: (error: Error) => void
  constructor(ws: WebSocket) {
    this.#ws = ws
  }
  async start(): Promise<void> {
    this.#ws.on('message', (data) => this.onmessage?.(JSON.parse(String(data)) as JSONRPCMessage))
    this.#ws.on('close', () => this.onclose?.())
    this.#ws.on('error', (err) => this.onerror?.(err))
  }
  async send(message: JSONRPCMessage): Promise<void> {
    this.#ws.send(JSON.stringify(message))
  }
  async close(): Promise<void> {
    this.#ws.close()
  }
}

t.test('WebSocket: two list requests under one id are both answered filtered', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'mcp' })
  await once(wss, 'listening')
  wss.on('connection', (ws) => {
    void latchedServer(2).connect(new SocketTransport(ws))
  })
  t.teardown(() => {
    for (const c of wss.clients) c.terminate()
    wss.close()
  })
  const mesh = await startMcpMesh(t, {
    upstream: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    serverPolicy: POLICY,
  })
  const ws = new WebSocket(mesh.agentUrl.replace(/^http/, 'ws'), 'mcp')
  t.teardown(() => ws.terminate())
  const frames: Array<{
    id?: unknown
    result?: { tools?: Array<{ name: string }>; prompts?: Array<{ name: string }> }
  }> = []
  let arrived: () => void = () => {}
  ws.on('message', (data) => {
    frames.push(JSON.parse(String(data)))
    arrived()
  })
  const frame = async (match: (f: (typeof frames)[number]) => boolean) => {
    for (;;) {
      const at = frames.findIndex(match)
      if (at !== -1) return frames.splice(at, 1)[0] as (typeof frames)[number]
      await new Promise<void>((resolve) => {
        arrived = resolve
      })
    }
  }
  await once(ws, 'open')
  ws.send(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  )
  await frame((f) => f.id === 0)
  ws.send(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }))
  ws.send(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'prompts/list' }))
  const answers = [await frame((f) => f.id === 7), await frame((f) => f.id === 7)]
  t.same(
    answers.find((a) => a.result?.tools !== undefined)?.result?.tools?.map((x) => x.name),
    ['echo'],
    'the tools answer is filtered',
  )
  t.same(
    answers.find((a) => a.result?.prompts !== undefined)?.result?.prompts?.map((x) => x.name),
    ['greet'],
    'the prompts answer is filtered',
  )
})
