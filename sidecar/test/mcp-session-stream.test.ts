// A session's binding stays in use while its GET stream is open. An agent that only listens (notifications on the
// session's GET stream) for longer than `mcp.sessions.idleTimeout` still owns a live session at the server: the
// sidecar must not forget it and answer the agent's next call 404, which the SDK 1.x client does not recover
// from. A session without a stream still expires after the idle time, as the reference.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import t from 'tap'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { mcpServer, serveMcp } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: echo
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }]
`
const IDLE_MS = 300
const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
}

t.test('a session with its GET stream open does not expire while the stream lasts', async (t) => {
  const gets: string[] = []
  const upstream = await serveMcp(t, {
    server: () => mcpServer(),
    transport: () => ({ enableJsonResponse: true }),
    onRequest: (req) => {
      if (req.method === 'GET') gets.push(String(req.headers['mcp-session-id']))
    },
  })
  const mesh = await startMcpMesh(t, {
    upstream,
    serverPolicy: POLICY,
    serverMcp: `{ paths: ["/mcp"], sessions: { idleTimeout: ${IDLE_MS}ms } }`,
  })
  const listener = new Client({ name: 'listener', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(mesh.agentUrl))
  await listener.connect(transport)
  t.teardown(() => listener.close())
  await waitFor(() => gets.includes(transport.sessionId as string), 'the GET stream to open')

  // The reference: a session initialized without a stream.
  const init = await fetch(mesh.agentUrl, {
    method: 'POST',
    headers: HEADERS,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'quiet', version: '1' },
      },
    }),
  })
  await init.body?.cancel()
  const quiet = init.headers.get('mcp-session-id') as string
  const since = Date.now()
  // Both sessions go unused for three idle times (a check would count as a use).
  await waitFor(() => Date.now() - since > 3 * IDLE_MS, 'the idle time to pass', 10_000, 50)

  const expired = await fetch(mesh.agentUrl, {
    method: 'POST',
    headers: { ...HEADERS, 'mcp-session-id': quiet },
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
  })
  t.equal(expired.status, 404, 'the session without a stream expired')
  t.equal(expired.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_SESSION_UNKNOWN')
  await expired.body?.cancel()
  t.same(
    await listener.callTool({ name: 'echo', arguments: { text: 'still here' } }),
    { content: [{ type: 'text', text: 'echo:still here' }] },
    'the session whose stream stayed open is still bound',
  )
})
