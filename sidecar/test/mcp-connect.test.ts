// `svidecar mcp connect` as a process: the official SDK client speaks stdio to it, and it speaks
// Streamable HTTP to serve-stdio in front of the real server-everything.

import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { connectCommand, MISBEHAVING_SERVER, spawnConnect, startBridge, until } from './helpers/mcp-bridge.ts'

async function stdioClient(
  t: Test,
  url: string,
  capabilities: ConstructorParameters<typeof Client>[1] = {},
): Promise<{ client: Client; stderr: () => string }> {
  const client = new Client({ name: 'stdio-agent', version: '1.0.0' }, capabilities)
  const transport = new StdioClientTransport({ ...connectCommand(url), stderr: 'pipe' })
  let stderr = ''
  transport.stderr?.on('data', (c: Buffer) => {
    stderr += String(c)
  })
  await client.connect(transport)
  t.teardown(() => client.close())
  return { client, stderr: () => stderr }
}

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '0' } },
})

t.test('a stdio SDK client uses server-everything through connect and serve-stdio', async (t) => {
  const bridge = await startBridge(t)
  const { client } = await stdioClient(t, bridge.url)
  t.equal(client.getServerVersion()?.name, 'mcp-servers/everything')
  const { tools } = await client.listTools()
  t.ok(tools.some((tool) => tool.name === 'echo'))
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'via connect' } })
  t.same(echo.content, [{ type: 'text', text: 'Echo: via connect' }])
  const progress: number[] = []
  const long = await client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress) },
  )
  // See mcp-bridge-chain.test.ts: the SDK's stdio client may itself drop a last progress that shares a read with the result.
  t.same(progress, [1, 2, 3].slice(0, progress.length), 'progress in order')
  t.ok(progress.length >= 2, 'progress streamed through both bridges before the result')
  t.match(long.content, [{ type: 'text', text: /completed/ }])
  t.equal(bridge.sessionCount, 1)
  await client.close()
  await until(() => bridge.sessionCount === 0, 'closing stdin to end the remote session (DELETE)')
  t.pass('the session was deleted when the agent went away')
})

t.test('a server request (sampling) reaches the stdio agent and its answer goes back', async (t) => {
  const bridge = await startBridge(t)
  const { client } = await stdioClient(t, bridge.url, { capabilities: { sampling: {} } })
  client.setRequestHandler(CreateMessageRequestSchema, async () => ({
    role: 'assistant',
    model: 'test-model',
    content: { type: 'text', text: 'sampled through connect' },
  }))
  const result = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi' } })
  t.match(result.content, [{ type: 'text', text: /sampled through connect/ }])
})

t.test('bad lines from the agent get JSON-RPC errors on stdout and the stream carries on', async (t) => {
  const bridge = await startBridge(t)
  const c = spawnConnect(t, bridge.url, ['--max-line-bytes', '2048'])
  c.send(INIT)
  await c.next((m) => m.id === 0 && m.result !== undefined, 'the initialize result')
  c.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
  c.send('this is not json')
  t.match(await c.next((m) => m.id === null, 'the parse error'), { error: { code: -32700 } })
  c.send(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 'big',
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'x'.repeat(5000) } },
    }),
  )
  t.match(await c.next((m) => m.id === 'big', 'the oversized error'), {
    error: { code: -31003, data: { code: 'SVD_BRIDGE_MESSAGE_TOO_LARGE' } },
  })
  c.send(JSON.stringify({ jsonrpc: '1.0', id: 'v', method: 'ping' }))
  t.match(await c.next((m) => m.id === 'v', 'the invalid request error'), { error: { code: -32600 } })
  c.send(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 'ok',
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'after' } },
    }),
  )
  t.match(await c.next((m) => m.id === 'ok', 'the echo'), { result: { content: [{ text: 'Echo: after' }] } })
  c.closeStdin()
  t.equal(await c.exited, 0, 'stdin closing is a clean exit')
  t.same(c.stdoutJunk, [], 'stdout carried nothing but JSON-RPC lines')
  t.match(c.stderr(), /SVD_BRIDGE_MESSAGE_TOO_LARGE/, 'the refusal is logged on stderr')
})

t.test(
  'an answer over the line cap is dropped and its request gets SVD_BRIDGE_MESSAGE_TOO_LARGE',
  async (t) => {
    const bridge = await startBridge(t)
    const c = spawnConnect(t, bridge.url, ['--max-line-bytes', '2048'])
    c.send(INIT)
    await c.next((m) => m.id === 0 && m.result !== undefined, 'the initialize result')
    c.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
    // server-everything's tool list is many kilobytes: the request is small, its answer is over the cap.
    c.send(JSON.stringify({ jsonrpc: '2.0', id: 'list', method: 'tools/list' }))
    t.match(await c.next((m) => m.id === 'list', 'the oversized answer error'), {
      error: { code: -31003, data: { code: 'SVD_BRIDGE_MESSAGE_TOO_LARGE', maxLineBytes: 2048 } },
    })
    c.send(JSON.stringify({ jsonrpc: '2.0', id: 'p', method: 'ping' }))
    t.match(await c.next((m) => m.id === 'p', 'a small answer after it'), { result: {} })
    c.closeStdin()
    t.equal(await c.exited, 0)
    t.same(c.stdoutJunk, [], 'no part of the dropped answer reached stdout')
  },
)

t.test('an unreachable server: requests get SVD_BRIDGE_UPSTREAM_FAILED', async (t) => {
  // A port that was free a moment ago: connection refused.
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  const c = spawnConnect(t, `http://127.0.0.1:${port}/mcp`)
  c.send(INIT)
  t.match(await c.next((m) => m.id === 0, 'the error'), {
    error: { code: -31004, data: { code: 'SVD_BRIDGE_UPSTREAM_FAILED', reason: 'ECONNREFUSED' } },
  })
  c.closeStdin()
  t.equal(await c.exited, 0)
})

t.test(
  'when the remote stdio server crashes, connect starts a new session and the agent carries on',
  async (t) => {
    const script = join(t.testdir(), 'misbehaving-server.mjs')
    writeFileSync(script, MISBEHAVING_SERVER)
    const bridge = await startBridge(t, { args: [script] })
    const c = spawnConnect(t, bridge.url)
    c.send(INIT)
    await c.next((m) => m.id === 0 && m.result !== undefined, 'the initialize result')
    c.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
    c.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'crash' }))
    t.match(await c.next((m) => m.id === 1, 'the crash error'), {
      error: { code: -31001, data: { code: 'SVD_BRIDGE_CHILD_EXITED' } },
    })
    c.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'echo', params: { back: true } }))
    t.match(await c.next((m) => m.id === 2, 'the echo on a new session'), { result: { back: true } })
    t.match(c.stderr(), /starting a new one/)
    t.equal(bridge.sessionCount, 1, 'one live session: the new one')
    t.notOk(
      c.lines.some((m) => typeof m.id === 'string' && m.id.startsWith('svidecar-')),
      'the replayed initialize stays internal',
    )
  },
)

t.test('--help and usage errors', async (t) => {
  const { execFile } = await import('node:child_process')
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const cmd = connectCommand('http://x')
      execFile(cmd.command, [...cmd.args.slice(0, 2), ...args], (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr }),
      )
    })
  const help = await run(['mcp', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /serve-stdio/)
  t.match(help.stdout, /connect URL/)
  const serveHelp = await run(['mcp', 'serve-stdio', '--help'])
  t.match(serveHelp.stdout, /--max-sessions N/)
  const noCmd = await run(['mcp', 'serve-stdio'])
  t.equal(noCmd.code, 2)
  t.match(noCmd.stderr, /needs the server command after --/)
  const badUrl = await run(['mcp', 'connect', 'not a url'])
  t.equal(badUrl.code, 2)
  const top = await run(['--help'])
  t.match(top.stdout, /mcp\s+stdio bridges/)
})
