// `svidecar mcp serve-stdio` with the real server-everything over stdio, driven
// by the official SDK client over Streamable HTTP.
import { spawn } from 'node:child_process'
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import t from 'tap'
import { connectCommand, EVERYTHING, sdkClient, startBridge, until } from './helpers/mcp-bridge.ts'

t.test('the SDK client lists tools and calls echo through the bridge', async (t) => {
  const bridge = await startBridge(t)
  const { client, transport } = await sdkClient(t, bridge.url)
  t.ok(transport.sessionId, 'the bridge issued an Mcp-Session-Id on initialize')
  t.equal(client.getServerVersion()?.name, 'mcp-servers/everything')
  const { tools } = await client.listTools()
  const names = tools.map((tool) => tool.name)
  t.ok(names.includes('echo'), 'echo is listed')
  t.ok(names.includes('trigger-long-running-operation'), 'the progress tool is listed')
  const result = await client.callTool({ name: 'echo', arguments: { message: 'hello over stdio' } })
  t.same(result.content, [{ type: 'text', text: 'Echo: hello over stdio' }])
})

t.test('progress notifications stream on the request before its result', async (t) => {
  const bridge = await startBridge(t)
  const { client } = await sdkClient(t, bridge.url)
  const progress: number[] = []
  const result = await client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  )
  t.same(progress, [1, 2, 3], 'every step arrived, in order, before the result')
  t.match(result.content, [{ type: 'text', text: /Long running operation completed/ }])
})

t.test('a server request (sampling) reaches the client and its answer reaches the server', async (t) => {
  const bridge = await startBridge(t)
  const { client } = await sdkClient(t, bridge.url, { capabilities: { sampling: {} } })
  let asked = ''
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    const first = req.params.messages[0]?.content
    asked = first !== undefined && 'text' in first ? String(first.text) : ''
    return { role: 'assistant', model: 'test-model', content: { type: 'text', text: 'sampled answer' } }
  })
  const { tools } = await client.listTools()
  t.ok(
    tools.some((tool) => tool.name === 'trigger-sampling-request'),
    'the server registered its sampling tool for a sampling-capable client',
  )
  const result = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'ping' } })
  t.match(asked, /ping/, 'the sampling request carried the prompt')
  t.match(result.content, [{ type: 'text', text: /sampled answer/ }])
})

t.test('each session gets its own stdio server; DELETE ends it', async (t) => {
  const bridge = await startBridge(t)
  const a = await sdkClient(t, bridge.url)
  const b = await sdkClient(t, bridge.url)
  t.not(a.transport.sessionId, b.transport.sessionId)
  t.equal(bridge.sessionCount, 2)
  const [ra, rb] = await Promise.all([
    a.client.callTool({ name: 'echo', arguments: { message: 'a' } }),
    b.client.callTool({ name: 'echo', arguments: { message: 'b' } }),
  ])
  t.same(ra.content, [{ type: 'text', text: 'Echo: a' }])
  t.same(rb.content, [{ type: 'text', text: 'Echo: b' }])
  await a.transport.terminateSession()
  t.equal(bridge.sessionCount, 1, 'the DELETE ended one session')
  const after = await fetch(bridge.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': String(a.transport.sessionId),
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
  })
  t.equal(after.status, 404, 'the ended session is unknown: the client must initialize again')
  t.match(await after.json(), { error: { code: -31006, data: { code: 'SVD_BRIDGE_SESSION_NOT_FOUND' } } })
})

t.test(
  'the serve-stdio command: listens, serves, and on SIGTERM ends its sessions and exits 0',
  async (t) => {
    const cmd = connectCommand('unused')
    const proc = spawn(
      cmd.command,
      [
        ...cmd.args.slice(0, 2),
        'mcp',
        'serve-stdio',
        '--listen',
        '127.0.0.1:0',
        '--',
        process.execPath,
        ...EVERYTHING,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
    t.teardown(() => {
      if (proc.exitCode === null) proc.kill('SIGKILL')
    })
    let stderr = ''
    proc.stderr.on('data', (c: Buffer) => {
      stderr += String(c)
    })
    await until(() => /"url":"http:\/\/127\.0\.0\.1:\d+\/mcp"/.test(stderr), 'the listening log line')
    const url = /"url":"(http:\/\/127\.0\.0\.1:\d+\/mcp)"/.exec(stderr)?.[1] as string
    const { client } = await sdkClient(t, url)
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'cli' } })
    t.same(echo.content, [{ type: 'text', text: 'Echo: cli' }])
    proc.kill('SIGTERM')
    t.equal(await exited, 0)
    t.match(stderr, /session ended: stopping the stdio server/)
  },
)
