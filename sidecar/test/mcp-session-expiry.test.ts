// A session the MCP server no longer knows (restarted, expired): the server answers 404, which must reach the SDK
// client as the 404 it is (2025-11-25 transports "Session Management": the client then starts over with
// initialize), and both sidecars forget their binding, so the old id is refused before it reaches the server and
// a new initialize is bound afresh. The server is the SDK 1.x Streamable HTTP transport; the test makes it forget.
import { randomUUID } from 'node:crypto'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import t from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { mcpServer } from './helpers/mcp-server.ts'
import { serveHttp } from './helpers/mcp-servers.ts'

const POLICY = `version: 1
rules:
  - id: echo
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }]
`

t.test('a session the server forgot: its 404 reaches the client, the sidecars unbind it', async (t) => {
  const sessions = new Map<string, StreamableHTTPServerTransport>()
  const reached: Array<string | undefined> = []
  const upstream = await serveHttp(t, (req, res) => {
    void (async () => {
      const sid = req.headers['mcp-session-id'] as string | undefined
      reached.push(sid)
      let transport = sid === undefined ? undefined : sessions.get(sid)
      if (transport === undefined) {
        if (sid !== undefined) {
          // As a server that lost its sessions answers (the spec's 404; the SDK's body).
          res.writeHead(404, { 'content-type': 'application/json' })
          res.end(
            JSON.stringify({
              jsonrpc: '2.0',
              id: null,
              error: { code: -32001, message: 'Session not found' },
            }),
          )
          return
        }
        const created = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          enableJsonResponse: true,
          onsessioninitialized: (id) => {
            sessions.set(id, created)
          },
        })
        transport = created
        await mcpServer().connect(created)
      }
      await transport.handleRequest(req, res)
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end()
    })
  })
  t.teardown(async () => {
    for (const s of sessions.values()) await s.close()
  })
  const mesh = await startMcpMesh(t, { upstream, serverPolicy: POLICY, agentPolicy: POLICY })
  const client = new Client({ name: 'agent', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(mesh.agentUrl))
  await client.connect(transport)
  t.teardown(() => client.close())
  const old = transport.sessionId as string
  await client.ping()

  for (const s of sessions.values()) await s.close()
  sessions.clear()
  try {
    await client.ping()
    t.fail('the server forgot the session')
  } catch (err) {
    t.type(err, StreamableHTTPError)
    t.equal((err as StreamableHTTPError).code, 404, "the server's 404 reaches the client unchanged")
    t.match((err as Error).message, /Session not found/)
  }

  const before = reached.length
  const stale = await fetch(mesh.agentUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': old,
      'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  })
  t.equal(stale.status, 404, 'the old id is still 404')
  t.equal(
    stale.headers.get('x-svidecar-error'),
    'SVD_MCP_SESSION_UNKNOWN',
    "now from the agent's own sidecar",
  )
  t.match(await stale.json(), { error: { message: /send initialize again/ } })
  t.equal(reached.length, before, 'the forgotten session no longer reaches the server')

  const again = new Client({ name: 'agent', version: '1.0.0' })
  const fresh = new StreamableHTTPClientTransport(new URL(mesh.agentUrl))
  await again.connect(fresh)
  t.teardown(() => again.close())
  t.not(fresh.sessionId, old)
  t.same(
    (await again.listTools()).tools.map((x) => x.name),
    ['echo'],
    'a new initialize is bound and filtered',
  )
})
