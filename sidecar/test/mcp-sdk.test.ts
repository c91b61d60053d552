// The MCP lens with the official SDK 1.x client and server (Streamable HTTP, JSON and SSE responses), each
// behind its own sidecar, mTLS between them: lists filtered, allowed calls through, denials in every style,
// batches, sessions bound to their SPIFFE ID, malformed input refused, progress streamed.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpError } from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { on, type PolicyDecisionEvent } from '../src/observe/events.ts'
import { AGENT, AGENT2, startMcpMesh } from './helpers/mcp-mesh.ts'
import { McpTestServer } from './helpers/mcp-server.ts'

const POLICY = `version: 1
denyStyle: hide
rules:
  - id: agents-tools
    effect: allow
    subjects: ["${AGENT}", "${AGENT2}"]
    resources:
      - { kind: mcp.tool, name: echo }
      - { kind: mcp.tool, name: progress }
      - { kind: mcp.tool, name: explained_tool }
      - { kind: mcp.tool, name: forbidden_tool }
      - { kind: mcp.resource, uri: "file:///public/**" }
      - { kind: mcp.prompt, name: greet }
  - id: write-tmp-only
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: write_file }]
    when: "!has(attributes.mcp.arguments) || attributes.mcp.arguments.path.startsWith('/tmp/')"
  - id: no-explained
    effect: deny
    denyStyle: explain
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: mcp.tool, name: explained_tool }]
  - id: step-up
    effect: deny
    denyStyle: forbid
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: mcp.tool, name: forbidden_tool }]
`

function decisions(t: Test): PolicyDecisionEvent[] {
  const seen: PolicyDecisionEvent[] = []
  t.teardown(on('policyDecision', (e) => seen.push(e)))
  return seen
}

async function connect(
  t: Test,
  url: string,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'svidecar-test-agent', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(url))
  await client.connect(transport)
  t.teardown(() => client.close())
  return { client, transport }
}

async function rejects(t: Test, p: Promise<unknown>, check: (err: unknown) => void, what: string) {
  try {
    await p
    t.fail(`${what}: expected a rejection`)
  } catch (err) {
    check(err)
  }
}

for (const mode of ['json', 'sse'] as const) {
  t.test(
    `SDK 1.x over two sidecars (${mode} responses): filtered lists, allowed calls, every denial style`,
    async (t) => {
      const upstream = await McpTestServer.start(mode)
      t.teardown(() => upstream.close())
      const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
      const events = decisions(t)
      const { client } = await connect(t, mesh.agentUrl)

      const tools = await client.listTools()
      t.same(
        tools.tools.map((x) => x.name).sort(),
        ['echo', 'explained_tool', 'forbidden_tool', 'progress', 'write_file'],
        'secret_tool (default deny, hide) is left out; explained and forbidden tools stay listed',
      )
      const resources = await client.listResources()
      t.same(
        resources.resources.map((r) => r.uri),
        ['file:///public/readme.txt'],
      )
      const templates = await client.listResourceTemplates()
      t.same(
        templates.resourceTemplates.map((r) => r.uriTemplate),
        ['file:///public/{name}'],
      )
      const prompts = await client.listPrompts()
      t.same(
        prompts.prompts.map((p) => p.name),
        ['greet'],
      )

      t.same(await client.callTool({ name: 'echo', arguments: { text: 'hi' } }), {
        content: [{ type: 'text', text: 'echo:hi' }],
      })
      t.same(
        await client.callTool({ name: 'write_file', arguments: { path: '/tmp/a' } }),
        {
          content: [{ type: 'text', text: 'write_file:/tmp/a' }],
        },
        'a CEL condition on the arguments allows this call',
      )

      await rejects(
        t,
        client.callTool({ name: 'secret_tool', arguments: {} }),
        (err) => {
          t.type(err, McpError)
          t.equal((err as McpError).code, -32602, 'hide: answered as an unknown tool')
          t.match((err as McpError).message, /Unknown tool: secret_tool/)
        },
        'secret_tool',
      )
      await rejects(
        t,
        client.callTool({ name: 'write_file', arguments: { path: '/etc/passwd' } }),
        (err) => t.equal((err as McpError).code, -32602),
        'write_file outside /tmp',
      )
      const explained = await client.callTool({ name: 'explained_tool', arguments: {} })
      t.equal(explained.isError, true, 'explain: a tool error result')
      t.match((explained.content as Array<{ text: string }>)[0]?.text, /rule no-explained/)
      await rejects(
        t,
        client.callTool({ name: 'forbidden_tool', arguments: {} }),
        (err) => {
          t.type(err, StreamableHTTPError)
          t.equal((err as StreamableHTTPError).code, 403, 'forbid: HTTP 403')
        },
        'forbidden_tool',
      )

      t.match(await client.readResource({ uri: 'file:///public/readme.txt' }), {
        contents: [{ text: 'contents of file:///public/readme.txt' }],
      })
      await rejects(
        t,
        client.readResource({ uri: 'file:///private/keys.txt' }),
        (err) => t.equal((err as McpError).code, -32002, 'a hidden resource is not found (2025-11-25 code)'),
        'private resource',
      )
      t.match(await client.getPrompt({ name: 'greet' }), {
        messages: [{ content: { text: 'prompt greet' } }],
      })
      await rejects(
        t,
        client.getPrompt({ name: 'admin_prompt' }),
        (err) => t.equal((err as McpError).code, -32602),
        'admin prompt',
      )
      await rejects(
        t,
        client.complete({
          ref: { type: 'ref/prompt', name: 'admin_prompt' },
          argument: { name: 'a', value: 'x' },
        }),
        (err) => t.equal((err as McpError).code, -32602, 'a completion is decided as its prompt'),
        'completion of a hidden prompt',
      )
      t.match(
        await client.complete({
          ref: { type: 'ref/prompt', name: 'greet' },
          argument: { name: 'a', value: 'x' },
        }),
        { completion: { values: ['alpha', 'beta'] } },
      )

      const reached = upstream.calls('tools/call').map((c) => c.name)
      t.same(reached, ['echo', 'write_file'], 'no denied call reached the server')
      t.same(
        upstream.calls('resources/read').map((c) => c.uri),
        ['file:///public/readme.txt'],
      )
      t.same(
        upstream.calls('prompts/get').map((c) => c.name),
        ['greet'],
      )

      // The audit event always carries the real rule and reason, whatever the client was told.
      const denied = events.filter((e) => e.decision === 'deny' && e.listener === 'public')
      t.match(
        denied.find((e) => e.resource === 'explained_tool'),
        { action: 'mcp.tool', subject: AGENT, ruleId: 'no-explained' },
      )
      t.match(
        denied.find((e) => e.resource === 'forbidden_tool'),
        { ruleId: 'step-up' },
      )
      t.match(
        denied.find((e) => e.resource === 'secret_tool'),
        { reason: /no rule allows mcp\.tool secret_tool/ },
      )
      t.ok(
        events.some((e) => e.decision === 'allow' && e.resource === 'echo' && e.ruleId === 'agents-tools'),
        'allowed calls are reported too',
      )
    },
  )
}

t.test('progress notifications stream through an SSE response', async (t) => {
  const upstream = await McpTestServer.start('sse')
  t.teardown(() => upstream.close())
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const { client } = await connect(t, mesh.agentUrl)
  const progress: number[] = []
  const result = await client.callTool({ name: 'progress', arguments: {} }, undefined, {
    onprogress: (p) => progress.push(p.progress),
  })
  t.same(progress, [1, 2, 3])
  t.same(result, { content: [{ type: 'text', text: 'done' }] })
})

t.test('a session is bound to the SPIFFE ID that created it', async (t) => {
  const upstream = await McpTestServer.start('json')
  t.teardown(() => upstream.close())
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const { client, transport } = await connect(t, mesh.agentUrl)
  const sessionId = transport.sessionId
  t.type(sessionId, 'string')
  await client.ping()

  const before = upstream.seen.length
  const takeover = await fetch(mesh.agent2Url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': sessionId as string,
      'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'echo', arguments: {} },
    }),
  })
  t.equal(takeover.status, 403)
  t.equal(takeover.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_SESSION_FOREIGN')
  t.match(await takeover.json(), { jsonrpc: '2.0', error: { code: -32600 } })
  const stream = await fetch(mesh.agent2Url, {
    headers: { accept: 'text/event-stream', 'mcp-session-id': sessionId as string },
  })
  t.equal(stream.status, 403, 'nor may another workload open its stream')
  await stream.body?.cancel()
  const end = await fetch(mesh.agent2Url, {
    method: 'DELETE',
    headers: { 'mcp-session-id': sessionId as string },
  })
  t.equal(end.status, 403, 'or end it')
  await end.body?.cancel()
  t.equal(upstream.seen.length, before, 'nothing reached the server')

  const unknown = await fetch(mesh.agentUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'mcp-session-id': 'never-issued' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  })
  t.equal(unknown.status, 404, 'a session the sidecar never bound is treated as expired')
  t.equal(unknown.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_SESSION_UNKNOWN')
  await unknown.body?.cancel()

  t.same(
    await client.callTool({ name: 'echo', arguments: { text: 'still mine' } }),
    {
      content: [{ type: 'text', text: 'echo:still mine' }],
    },
    'the owner keeps using it',
  )
  await transport.terminateSession()
  const after = await fetch(mesh.agentUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'mcp-session-id': sessionId as string },
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
  })
  t.equal(after.status, 404, 'an ended session is forgotten')
  await after.body?.cancel()
})

t.test("outbound: the agent's own sidecar filters and decides for the agent", async (t) => {
  const upstream = await McpTestServer.start('sse')
  t.teardown(() => upstream.close())
  const mesh = await startMcpMesh(t, {
    upstream: upstream.url,
    agentPolicy: `version: 1
rules:
  - id: own-echo
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }]
`,
  })
  const events = decisions(t)
  const { client } = await connect(t, mesh.agentUrl)
  t.same(
    (await client.listTools()).tools.map((x) => x.name),
    ['echo'],
  )
  await rejects(
    t,
    client.callTool({ name: 'secret_tool', arguments: {} }),
    (err) => t.equal((err as McpError).code, -32602),
    'secret_tool',
  )
  t.same(upstream.calls('tools/call'), [], 'the denied call never left the agent')
  t.match(
    events.find((e) => e.resource === 'secret_tool'),
    { listener: 'egress', direction: 'outbound', subject: AGENT, decision: 'deny' },
  )
})
