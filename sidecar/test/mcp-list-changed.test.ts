// Server notifications through two sidecars (both with a policy, so both read the session's GET stream): the SDK
// 1.x server's notifications/tools/list_changed, prompts and resources list_changed reach the SDK 1.x client as
// sent (protocols.md §3: they pass through; the next list call is filtered again), and the list the client then
// asks for shows the new allowed tool but not the new denied one.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import {
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js'
import t from 'tap'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { sessionMcpServer } from './helpers/mcp-servers.ts'

const POLICY = `version: 1
rules:
  - id: ok-tools
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: "ok_*" }]
`

const text = (s: string) => ({ content: [{ type: 'text' as const, text: s }] })

t.test('list_changed notifications pass through; the next list is filtered again', async (t) => {
  const servers: McpServer[] = []
  const served = await sessionMcpServer(t, () => {
    const server = new McpServer({ name: 'changing', version: '1.0.0' })
    server.registerTool('ok_first', { description: 'first' }, () => text('first'))
    server.registerTool('secret_first', { description: 'hidden' }, () => text('hidden'))
    server.registerPrompt('greet', { description: 'hello' }, () => ({
      messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }],
    }))
    server.registerResource('memo', 'memo://one', {}, () => ({
      contents: [{ uri: 'memo://one', text: 'one' }],
    }))
    servers.push(server)
    return server
  })
  const mesh = await startMcpMesh(t, { upstream: served.url, serverPolicy: POLICY, agentPolicy: POLICY })
  const client = new Client({ name: 'agent', version: '1.0.0' })
  const seen: string[] = []
  client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => {
    seen.push(n.method)
  })
  client.setNotificationHandler(PromptListChangedNotificationSchema, (n) => {
    seen.push(n.method)
  })
  client.setNotificationHandler(ResourceListChangedNotificationSchema, (n) => {
    seen.push(n.method)
  })
  await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
  t.teardown(() => client.close())
  t.same(
    (await client.listTools()).tools.map((x) => x.name),
    ['ok_first'],
  )
  const server = servers[0] as McpServer
  // The notifications travel on the session's GET stream, which the client opens after initialize: until it is
  // open the server drops them, so each is sent again until the client has it.
  for (const [method, send] of [
    ['notifications/tools/list_changed', () => server.sendToolListChanged()],
    ['notifications/prompts/list_changed', () => server.sendPromptListChanged()],
    ['notifications/resources/list_changed', () => server.sendResourceListChanged()],
  ] as const) {
    await waitFor(
      () => {
        if (seen.includes(method)) return true
        send()
        return false
      },
      method,
      10_000,
      50,
    )
  }
  seen.length = 0
  server.registerTool('ok_second', { description: 'new, allowed' }, () => text('second'))
  server.registerTool('secret_second', { description: 'new, hidden' }, () => text('hidden'))
  await waitFor(() => seen.includes('notifications/tools/list_changed'), 'list_changed for the new tools')
  t.same(
    (await client.listTools()).tools.map((x) => x.name),
    ['ok_first', 'ok_second'],
    'the new allowed tool is listed, the new hidden one is not',
  )
  t.same(await client.callTool({ name: 'ok_second', arguments: {} }), text('second'))
})
