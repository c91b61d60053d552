// MCP over WebSocket (the SDK 1.x WebSocketClientTransport: subprotocol `mcp`, one JSON-RPC message per text
// frame) through two sidecars: every frame decided, refusals answered on the socket, list answers filtered.
// No MCP spec revision defines a WebSocket server, so the server end is the SDK's Server over a small
// transport written here with `ws`.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import type { JSONRPCMessage, McpError } from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import { on, type RequestEvent } from '../src/observe/events.ts'
import { AGENT_SAMPLING_POLICY, answeringAgent, registerAskTool, toolText as text } from './helpers/asking.ts'
import { AGENT, AGENT2, startMcpMesh } from './helpers/mcp-mesh.ts'
import { mcpServer } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: ws-tools
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }, { kind: mcp.tool, name: explained_tool }]
  - id: no-explained
    effect: deny
    denyStyle: explain
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: explained_tool }]
  - id: step-up
    effect: deny
    denyStyle: forbid
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: forbidden_tool }]
`

/** The server side of one socket as an MCP transport. */
class ServerSocketTransport implements Transport {
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

async function wsServer(t: Test): Promise<{ url: string; calls: string[] }> {
  const calls: string[] = []
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'mcp' })
  await once(wss, 'listening')
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { method?: string; params?: { name?: string } }
      if (m.method === 'tools/call') calls.push(m.params?.name ?? '')
    })
    void mcpServer().connect(new ServerSocketTransport(ws))
  })
  t.teardown(() => {
    for (const c of wss.clients) c.terminate()
    wss.close()
  })
  return { url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`, calls }
}

t.test(
  'MCP over WebSocket: every frame decided, lists filtered, refusals answered on the socket',
  async (t) => {
    const upstream = await wsServer(t)
    const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
    const client = new Client({ name: 'ws-agent', version: '1.0.0' })
    await client.connect(new WebSocketClientTransport(new URL(mesh.agentUrl.replace(/^http/, 'ws'))))
    t.teardown(() => client.close())

    t.same((await client.listTools()).tools.map((x) => x.name).sort(), [
      'echo',
      'explained_tool',
      'forbidden_tool',
    ])
    t.same(await client.callTool({ name: 'echo', arguments: { text: 'ws' } }), {
      content: [{ type: 'text', text: 'echo:ws' }],
    })
    try {
      await client.callTool({ name: 'secret_tool', arguments: {} })
      t.fail('secret_tool ran')
    } catch (err) {
      t.equal((err as McpError).code, -32602, 'hide')
    }
    const explained = await client.callTool({ name: 'explained_tool', arguments: {} })
    t.equal(explained.isError, true, 'explain')
    try {
      await client.callTool({ name: 'forbidden_tool', arguments: {} })
      t.fail('forbidden_tool ran')
    } catch (err) {
      t.equal(
        (err as McpError).code,
        403,
        'forbid: the policy-denied JSON-RPC error (no HTTP status on a socket)',
      )
    }
    t.same(upstream.calls, ['echo'], 'no denied call reached the server')
  },
)

t.test('a list answer on a WebSocket is decided as that list (attributes.mcp.method)', async (t) => {
  const upstream = await wsServer(t)
  const policy = `${POLICY}  - id: progress-listed-only
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: progress }]
    when: 'attributes.mcp.method == "tools/list"'
`
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: policy })
  const client = new Client({ name: 'ws-agent', version: '1.0.0' })
  await client.connect(new WebSocketClientTransport(new URL(mesh.agentUrl.replace(/^http/, 'ws'))))
  t.teardown(() => client.close())
  t.ok(
    (await client.listTools()).tools.some((x) => x.name === 'progress'),
    'listed: the rule sees the list method',
  )
  await t.rejects(client.callTool({ name: 'progress', arguments: {} }), 'and not callable')
})

t.test('a WebSocket on an MCP path that does not speak mcp is refused', async (t) => {
  const upstream = await wsServer(t)
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const requests: RequestEvent[] = []
  t.teardown(on('request', (e) => requests.push(e)))
  const ws = new WebSocket(mesh.agentUrl.replace(/^http/, 'ws'), 'chat')
  ws.on('error', () => {})
  const [, res] = (await once(ws, 'unexpected-response')) as [
    unknown,
    { statusCode: number; headers: Record<string, string>; resume(): void },
  ]
  res.resume()
  // The server's sidecar refuses the upgrade (400 SVD_MCP_INVALID); the agent's relay reports an upstream that
  // refused a WebSocket upgrade as it reports any: 502 SVD_UPSTREAM_PROTOCOL.
  t.equal(res.statusCode, 502)
  t.equal(res.headers['x-svidecar-error'], 'SVD_UPSTREAM_PROTOCOL')
  t.match(
    requests.find((e) => e.listener === 'public'),
    { status: 400, code: 'SVD_MCP_INVALID', reason: 'WEBSOCKET' },
    "the server's sidecar refused it",
  )
  t.same(upstream.calls, [])
  ws.terminate()
})

t.test("a server's requests over WebSocket are decided by the agent's sidecar for the agent", async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'mcp' })
  await once(wss, 'listening')
  wss.on('connection', (ws) => {
    const server = new McpServer({ name: 'asking-ws', version: '1.0.0' })
    registerAskTool(server, 1500)
    void server.connect(new ServerSocketTransport(ws))
  })
  t.teardown(() => {
    for (const c of wss.clients) c.terminate()
    wss.close()
  })
  const upstream = `http://127.0.0.1:${(wss.address() as AddressInfo).port}`
  const mesh = await startMcpMesh(t, {
    upstream,
    serverPolicy: `version: 1
rules:
  - id: ask
    effect: allow
    subjects: ["${AGENT}", "${AGENT2}"]
    resources: [{ kind: mcp.tool, name: ask }]
`,
    agentPolicy: AGENT_SAMPLING_POLICY,
  })
  const connect = (url: string, asked: string[]) =>
    answeringAgent(t, new WebSocketClientTransport(new URL(url.replace(/^http/, 'ws'))), asked)

  const asked: string[] = []
  const agent = await connect(mesh.agentUrl, asked)
  t.equal(
    text(await agent.callTool({ name: 'ask', arguments: {} })),
    'sampled: hi there',
    'allowed: delivered',
  )
  t.same(asked, ['sampling'])

  const asked2: string[] = []
  const agent2 = await connect(mesh.agent2Url, asked2)
  t.match(
    text(await agent2.callTool({ name: 'ask', arguments: {} })),
    /^refused: /,
    "denied: the frame is dropped and the server's request fails (there is no side channel on a socket to answer it)",
  )
  t.same(asked2, [], 'the agent never saw the denied request')
})
