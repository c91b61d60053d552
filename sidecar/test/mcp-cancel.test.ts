// Cancellation through two sidecars, both eras (protocols.md §6). Session era: the SDK 1.x client's abort sends
// notifications/cancelled, which any authenticated peer may send, and the server's handler sees its signal abort.
// 2026-07-28: closing the request's stream is the cancellation; the SDK 2.x client closes it, and both sidecars
// must close the upstream request so the server's handler stops.
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
} from '@modelcontextprotocol/client'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer as McpServerV1 } from '@modelcontextprotocol/sdk/server/mcp.js'
import { McpServer } from '@modelcontextprotocol/server'
import t from 'tap'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { modernMcpServer, sessionMcpServer } from './helpers/mcp-servers.ts'

const POLICY = `version: 1
rules:
  - id: wait
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: wait }]
`

/** Counts the calls of a `wait` tool that never answers on its own, and those whose signal aborted. */
function waitTool() {
  const counts = { started: 0, aborted: 0 }
  const handler = (signal: AbortSignal) => {
    counts.started++
    return new Promise<{ content: Array<{ type: 'text'; text: string }> }>((resolve) => {
      signal.addEventListener('abort', () => {
        counts.aborted++
        resolve({ content: [{ type: 'text', text: 'aborted' }] })
      })
    })
  }
  return { counts, handler }
}

t.test('session era: an aborted call sends notifications/cancelled and the server stops', async (t) => {
  const { counts, handler } = waitTool()
  const served = await sessionMcpServer(t, () => {
    const server = new McpServerV1({ name: 'waits', version: '1.0.0' })
    server.registerTool('wait', { description: 'waits' }, (extra) => handler(extra.signal))
    return server
  })
  const mesh = await startMcpMesh(t, { upstream: served.url, serverPolicy: POLICY, agentPolicy: POLICY })
  const client = new Client({ name: 'agent', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
  t.teardown(() => client.close())
  const abort = new AbortController()
  const call = client.callTool({ name: 'wait', arguments: {} }, undefined, { signal: abort.signal })
  await waitFor(() => counts.started === 1, 'the call to start', 10_000)
  abort.abort()
  await t.rejects(call, 'the client gave up')
  await waitFor(() => counts.aborted === 1, "the server's handler to see the cancellation", 10_000)
  t.ok(served.methods.includes('notifications/cancelled'), 'notifications/cancelled reached the server')
})

t.test('2026-07-28: closing the request stream cancels the call at the server', async (t) => {
  const { counts, handler } = waitTool()
  const served = await modernMcpServer(t, () => {
    const server = new McpServer({ name: 'waits', version: '1.0.0' })
    server.registerTool('wait', { description: 'waits' }, (ctx) => handler(ctx.mcpReq.signal))
    return server
  })
  const mesh = await startMcpMesh(t, { upstream: served.url, serverPolicy: POLICY, agentPolicy: POLICY })
  const client = new ModernClient(
    { name: 'agent', version: '1.0.0' },
    { versionNegotiation: { mode: 'auto' } },
  )
  await client.connect(new ModernTransport(new URL(mesh.agentUrl)))
  t.teardown(() => client.close())
  t.same(served.methods, ['server/discover'], 'the stateless era was negotiated')
  const abort = new AbortController()
  const call = client.callTool({ name: 'wait', arguments: {} }, { signal: abort.signal })
  await waitFor(() => counts.started === 1, 'the call to start', 10_000)
  abort.abort()
  await t.rejects(call, 'the client gave up')
  await waitFor(() => counts.aborted === 1, "the server's handler to see its stream closed", 10_000)
  t.notOk(served.methods.includes('notifications/cancelled'), 'no notification: the closed stream said it')
})
