// @modelcontextprotocol/server-everything (Streamable HTTP on /mcp, SSE responses, resumable event ids) behind
// its own sidecar, the SDK 1.x client behind another, mTLS between them: the policy's view of a real server's
// many tools, resources, templates and prompts, and progress streamed through while a call runs.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { McpError } from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { startBridge } from './helpers/mcp-bridge.ts'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'

const POLICY = `version: 1
rules:
  - id: everyday-tools
    effect: allow
    subjects: ["${AGENT}"]
    resources:
      - { kind: mcp.tool, name: echo }
      - { kind: mcp.tool, name: get-sum }
      - { kind: mcp.tool, name: trigger-long-running-operation }
      - { kind: mcp.resource, uri: "demo://resource/dynamic/text/**" }
      - { kind: mcp.resource, uri: "demo://resource/static/document/features.md" }
      - { kind: mcp.prompt, name: simple-prompt }
`

/** A port that was free a moment ago: server-everything takes its port only from PORT and cannot report 0's. */
async function freePort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  s.close()
  await once(s, 'close')
  return port
}

async function startEverything(
  t: Test,
  transport: 'streamableHttp' | 'sse' = 'streamableHttp',
): Promise<string> {
  const entry = createRequire(import.meta.url).resolve(
    '@modelcontextprotocol/server-everything/dist/index.js',
  )
  const port = await freePort()
  const child = spawn(process.execPath, [entry, transport], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  t.teardown(() => {
    child.kill()
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString()
  })
  await waitFor(
    () => /listening on port|running on port/.test(stderr) || child.exitCode !== null,
    'server-everything',
    20_000,
  )
  if (child.exitCode !== null) throw new Error(`server-everything exited: ${stderr}`)
  return `http://127.0.0.1:${port}`
}

t.test('server-everything: the agent sees and calls only what the policy allows', async (t) => {
  const upstream = await startEverything(t)
  const mesh = await startMcpMesh(t, { upstream, serverPolicy: POLICY })
  const client = new Client({ name: 'agent', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
  t.teardown(() => client.close())

  const tools = (await client.listTools()).tools.map((x) => x.name).sort()
  t.same(tools, ['echo', 'get-sum', 'trigger-long-running-operation'], 'get-env and the rest are hidden')
  t.match(await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } }), {
    content: [{ type: 'text', text: /5/ }],
  })
  try {
    await client.callTool({ name: 'get-env', arguments: {} })
    t.fail('get-env ran')
  } catch (err) {
    t.equal((err as McpError).code, -32602, 'a hidden tool is unknown')
  }

  const resources = (await client.listResources()).resources.map((r) => r.uri)
  t.same(resources, ['demo://resource/static/document/features.md'], 'one of the static documents')
  const templates = (await client.listResourceTemplates()).resourceTemplates.map((r) => r.uriTemplate)
  t.same(templates, ['demo://resource/dynamic/text/{resourceId}'])
  t.match(await client.readResource({ uri: 'demo://resource/dynamic/text/1' }), { contents: [{ text: /./ }] })
  try {
    await client.readResource({ uri: 'demo://resource/static/document/instructions.md' })
    t.fail('a hidden document was read')
  } catch (err) {
    t.equal((err as McpError).code, -32002)
  }
  t.same(
    (await client.listPrompts()).prompts.map((p) => p.name),
    ['simple-prompt'],
  )

  // Progress arrives while the call runs, not bunched up with its result.
  const seen: string[] = []
  const result = client
    .callTool({ name: 'trigger-long-running-operation', arguments: { duration: 0.6, steps: 3 } }, undefined, {
      onprogress: (p) => seen.push(`progress ${p.progress}`),
    })
    .then((r) => {
      seen.push('result')
      return r
    })
  await waitFor(() => seen.length > 0, 'the first progress notification')
  t.equal(seen[0], 'progress 1', 'the first progress notification came before the result')
  await result
  t.same(seen, ['progress 1', 'progress 2', 'progress 3', 'result'])
})

t.test(
  'server-everything over HTTP+SSE (2024-11-05): answers on the stream filtered, the session bound',
  async (t) => {
    const upstream = await startEverything(t, 'sse')
    const mesh = await startMcpMesh(t, {
      upstream,
      serverPolicy: POLICY,
      mcpPath: '/sse',
      serverMcp: '{ paths: [/sse, /message] }',
    })
    const transport = new SSEClientTransport(new URL(mesh.agentUrl))
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(transport)
    t.teardown(() => client.close())

    t.same(
      (await client.listTools()).tools.map((x) => x.name).sort(),
      ['echo', 'get-sum', 'trigger-long-running-operation'],
      'the tools/list answer on the stream is filtered',
    )
    t.match(await client.callTool({ name: 'echo', arguments: { message: 'sse' } }), {
      content: [{ type: 'text', text: /sse/ }],
    })
    try {
      await client.callTool({ name: 'get-env', arguments: {} })
      t.fail('get-env ran')
    } catch (err) {
      t.equal(
        (err as McpError).code,
        -32602,
        'the hidden answer arrives on the stream, as the server would send it',
      )
    }
    const progress: number[] = []
    await client.callTool(
      { name: 'trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } },
      undefined,
      {
        onprogress: (p) => progress.push(p.progress),
      },
    )
    // Over this transport server-everything's last progress races its result (the same without any sidecar, checked
    // directly against it): the first ones must have streamed through.
    t.same(progress.slice(0, 2), [1, 2])

    // Another workload that learned the session id may not post into that session.
    const sessionId = (transport as unknown as { _endpoint?: URL })._endpoint?.searchParams.get('sessionId')
    t.type(sessionId, 'string')
    const other = new URL(mesh.agent2Url)
    other.pathname = '/message'
    other.searchParams.set('sessionId', sessionId as string)
    const takeover = await fetch(other, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 99,
        method: 'tools/call',
        params: { name: 'echo', arguments: {} },
      }),
    })
    t.equal(takeover.status, 403)
    t.equal(takeover.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_SESSION_FOREIGN')
    await takeover.body?.cancel()
    const modern = await fetch(other, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'ping',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 98, method: 'ping' }),
    })
    t.equal(modern.status, 403, 'also when the request claims the stateless era')
    await modern.body?.cancel()
    other.searchParams.set('sessionId', 'never-issued')
    const unknown = await fetch(other, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    })
    t.equal(unknown.status, 404)
    await unknown.body?.cancel()
  },
)

t.test(
  'server-everything over stdio behind `svidecar mcp serve-stdio`: the lens filters and decides',
  async (t) => {
    const bridge = await startBridge(t)
    const mesh = await startMcpMesh(t, {
      upstream: `http://127.0.0.1:${bridge.address.port}`,
      serverPolicy: POLICY,
    })
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
    t.teardown(() => client.close())
    t.same((await client.listTools()).tools.map((x) => x.name).sort(), [
      'echo',
      'get-sum',
      'trigger-long-running-operation',
    ])
    t.match(await client.callTool({ name: 'echo', arguments: { message: 'bridged' } }), {
      content: [{ type: 'text', text: 'Echo: bridged' }],
    })
    try {
      await client.callTool({ name: 'get-env', arguments: {} })
      t.fail('get-env ran')
    } catch (err) {
      t.equal((err as McpError).code, -32602)
    }
  },
)
