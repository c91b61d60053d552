// serve-stdio against a misbehaving stdio server (a fake, see MISBEHAVING_SERVER) and bad HTTP input:
// every failure is a JSON-RPC error with a stable code, and the bridge keeps serving.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import type { StdioBridgeServer } from '../src/mcp-bridge/serve-stdio.ts'
import { MISBEHAVING_SERVER, recordingLogger, startBridge, until } from './helpers/mcp-bridge.ts'

const ACCEPT = 'application/json, text/event-stream'

interface Reply {
  status: number
  headers: Headers
  messages: Array<Record<string, unknown>>
}

async function post(bridge: StdioBridgeServer, body: unknown, session?: string): Promise<Reply> {
  const res = await fetch(bridge.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      ...(session === undefined ? {} : { 'mcp-session-id': session }),
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  const type = res.headers.get('content-type') ?? ''
  const messages = type.startsWith('text/event-stream')
    ? text
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>)
    : text === ''
      ? []
      : [JSON.parse(text) as Record<string, unknown>]
  return { status: res.status, headers: res.headers, messages }
}

const INIT = {
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '0' } },
}

async function misbehaving(t: Test, options: Parameters<typeof startBridge>[1] = {}) {
  const script = join(t.testdir(), 'misbehaving-server.mjs')
  writeFileSync(script, MISBEHAVING_SERVER)
  let childLog = ''
  const childStderr = new Writable({
    write(chunk, _encoding, done) {
      childLog += String(chunk)
      done()
    },
  })
  const { logger, records } = recordingLogger()
  const bridge = await startBridge(t, { args: [script], childStderr, logger, ...options })
  const init = await post(bridge, INIT)
  const session = init.headers.get('mcp-session-id') ?? ''
  await post(bridge, { jsonrpc: '2.0', method: 'notifications/initialized' }, session)
  await until(() => childLog.includes('notifications/initialized'), 'the server to read initialized')
  return { bridge, session, records, childLog: () => childLog, script }
}

t.test(
  'a slow stdio server: the request times out with SVD_BRIDGE_CHILD_TIMEOUT and the server is told to cancel',
  async (t) => {
    const { bridge, session, childLog } = await misbehaving(t, { requestTimeoutMs: 1000 })
    const slow = await post(bridge, { jsonrpc: '2.0', id: 'a', method: 'slow' }, session)
    t.equal(slow.status, 200)
    t.match(slow.messages, [
      { id: 'a', error: { code: -31002, data: { code: 'SVD_BRIDGE_CHILD_TIMEOUT', timeoutMs: 1000 } } },
    ])
    await until(() => childLog().includes('notifications/cancelled'), 'the cancellation to reach the server')
    t.match(childLog(), /"method":"notifications\/cancelled","params":\{"requestId":\d+/)
    const next = await post(bridge, { jsonrpc: '2.0', id: 'a', method: 'echo', params: { n: 1 } }, session)
    t.match(
      next.messages,
      [{ id: 'a', result: { n: 1 } }],
      'the same id is usable again and the server still answers',
    )
  },
)

t.test('progress restarts the request timeout: a long call that reports progress is not cut', async (t) => {
  const { bridge, session } = await misbehaving(t, { requestTimeoutMs: 600 })
  const reply = await post(
    bridge,
    {
      jsonrpc: '2.0',
      id: 1,
      method: 'ticks',
      params: { count: 6, everyMs: 200, _meta: { progressToken: 'tk' } },
    },
    session,
  )
  t.equal(reply.headers.get('content-type'), 'text/event-stream', 'progress turned the reply into a stream')
  t.same(
    reply.messages.map((m) => (m.id === 1 ? m.result : (m.params as { progress: number }).progress)),
    [1, 2, 3, 4, 5, 6, { ticks: 6 }],
    'six progress events in order, then the result, over 1.2 s with a 600 ms timeout',
  )
})

t.test("a client's cancellation reaches the server under the server's id for the request", async (t) => {
  const { bridge, session, childLog } = await misbehaving(t)
  const control = new AbortController()
  const slow = fetch(bridge.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, 'mcp-session-id': session },
    body: JSON.stringify({ jsonrpc: '2.0', id: 'mine', method: 'slow' }),
    signal: control.signal,
  }).catch(() => undefined)
  await until(() => childLog().includes('"method":"slow"'), 'the slow request to reach the server')
  const childId = /"id":(\d+),"method":"slow"|"method":"slow"[^\n]*"id":(\d+)/.exec(childLog())
  const serverId = Number(childId?.[1] ?? childId?.[2])
  t.ok(Number.isInteger(serverId), 'the server saw a bridge-assigned integer id, not "mine"')
  const cancel = await post(
    bridge,
    { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'mine', reason: 'user' } },
    session,
  )
  t.equal(cancel.status, 202)
  await until(() => childLog().includes('notifications/cancelled'), 'the cancellation to reach the server')
  t.match(
    childLog(),
    new RegExp(`"notifications/cancelled","params":\\{"requestId":${serverId},"reason":"user"\\}`),
  )
  control.abort()
  await slow
})

t.test(
  'a crashing stdio server: pending requests get SVD_BRIDGE_CHILD_EXITED, the session ends, a new one starts a new server',
  async (t) => {
    const { bridge, session, records, childLog } = await misbehaving(t)
    const [pending, crash] = await Promise.all([
      post(bridge, { jsonrpc: '2.0', id: 1, method: 'slow' }, session),
      (async () => {
        await until(() => childLog().includes('"method":"slow"'), 'the slow request to reach the server')
        return post(bridge, { jsonrpc: '2.0', id: 2, method: 'crash' }, session)
      })(),
    ])
    for (const [reply, id] of [
      [pending, 1],
      [crash, 2],
    ] as const)
      t.match(reply.messages, [{ id, error: { code: -31001, data: { code: 'SVD_BRIDGE_CHILD_EXITED' } } }])
    t.match(crash.messages[0], { error: { message: /exited with status 3/ } })
    t.ok(
      records.some((r) => r.code === 'SVD_BRIDGE_CHILD_EXITED' && r.level === 'error'),
      'the crash is logged at error',
    )
    const gone = await post(bridge, { jsonrpc: '2.0', id: 3, method: 'echo' }, session)
    t.equal(gone.status, 404, 'the session of a crashed server is gone')
    t.match(gone.messages, [{ error: { code: -31006, data: { code: 'SVD_BRIDGE_SESSION_NOT_FOUND' } } }])
    const again = await post(bridge, INIT)
    t.equal(again.status, 200, 'a new initialize starts a new server')
    t.not(again.headers.get('mcp-session-id'), session)
  },
)

t.test(
  'an oversized answer is dropped and answered with SVD_BRIDGE_MESSAGE_TOO_LARGE; the stream resynchronises',
  async (t) => {
    const { bridge, session, records } = await misbehaving(t, { maxLineBytes: 4096 })
    const big = await post(
      bridge,
      { jsonrpc: '2.0', id: 7, method: 'big', params: { bytes: 100_000 } },
      session,
    )
    t.match(big.messages, [
      { id: 7, error: { code: -31003, data: { code: 'SVD_BRIDGE_MESSAGE_TOO_LARGE' } } },
    ])
    t.ok(records.some((r) => r.code === 'SVD_BRIDGE_MESSAGE_TOO_LARGE' && (r.bytes as number) > 100_000))
    const next = await post(
      bridge,
      { jsonrpc: '2.0', id: 8, method: 'echo', params: { after: true } },
      session,
    )
    t.match(next.messages, [{ id: 8, result: { after: true } }], 'the next line is read whole')
  },
)

t.test('non-JSON on the server stdout is logged and skipped', async (t) => {
  const { bridge, session, records } = await misbehaving(t)
  const reply = await post(bridge, { jsonrpc: '2.0', id: 1, method: 'noise' }, session)
  t.match(reply.messages, [{ id: 1, result: { ok: true } }])
  t.ok(records.some((r) => /not JSON: skipped/.test(String(r.msg)) && r.line === 'this is not JSON'))
})

t.test('a notification with no GET stream open waits for the stream', async (t) => {
  const { bridge, session } = await misbehaving(t)
  // JSON only: the reply cannot carry the notification, which then waits for a GET stream.
  const res = await fetch(bridge.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', 'mcp-session-id': session },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'notify' }),
  })
  t.match(await res.json(), { id: 1, result: { ok: true } })
  const control = new AbortController()
  t.teardown(() => control.abort())
  const stream = await fetch(bridge.url, {
    headers: { accept: 'text/event-stream', 'mcp-session-id': session },
    signal: control.signal,
  })
  t.equal(stream.status, 200)
  const reader = (stream.body as ReadableStream<Uint8Array>).getReader()
  let text = ''
  while (!text.includes('\n\n')) {
    const { value } = await reader.read()
    text += new TextDecoder().decode(value)
  }
  t.match(
    text,
    /data: \{"jsonrpc":"2.0","method":"notifications\/message","params":\{"level":"info","data":"hello"\}\}/,
  )
  const second = await fetch(bridge.url, {
    headers: { accept: 'text/event-stream', 'mcp-session-id': session },
  })
  t.equal(second.status, 409, 'one GET stream per session')
  await second.body?.cancel()
})

t.test('bad HTTP input gets the error the transport calls for, and nothing reaches the server', async (t) => {
  const { bridge, session, childLog } = await misbehaving(t, { maxLineBytes: 1024 })
  const seen = childLog().length
  const notJson = await post(bridge, '{"jsonrpc":', session)
  t.equal(notJson.status, 400)
  t.match(notJson.messages, [{ id: null, error: { code: -32700 } }])
  const wrongVersion = await post(bridge, { jsonrpc: '1.0', id: 1, method: 'echo' }, session)
  t.equal(wrongVersion.status, 400)
  t.match(wrongVersion.messages, [{ error: { code: -32600, message: /jsonrpc/ } }])
  const badId = await post(bridge, { jsonrpc: '2.0', id: 1.5, method: 'echo' }, session)
  t.match(badId.messages, [{ error: { code: -32600, message: /id/ } }])
  const tooBig = await post(
    bridge,
    { jsonrpc: '2.0', id: 1, method: 'echo', params: { x: 'y'.repeat(5000) } },
    session,
  )
  t.equal(tooBig.status, 413)
  t.match(tooBig.messages, [{ error: { code: -31003, data: { code: 'SVD_BRIDGE_MESSAGE_TOO_LARGE' } } }])
  const noSession = await post(bridge, { jsonrpc: '2.0', id: 1, method: 'echo' })
  t.equal(noSession.status, 400)
  const batchInit = await post(bridge, [INIT])
  t.equal(batchInit.status, 400, 'initialize alone, never in a batch')
  const put = await fetch(bridge.url, { method: 'PUT' })
  t.equal(put.status, 405)
  t.equal(put.headers.get('allow'), 'GET, POST, DELETE')
  await put.body?.cancel()
  const foreign = await fetch(bridge.url, {
    method: 'POST',
    headers: { origin: 'https://evil.example', 'content-type': 'application/json', accept: ACCEPT },
    body: JSON.stringify(INIT),
  })
  t.equal(foreign.status, 403, 'a non-loopback Origin is refused (DNS rebinding)')
  await foreign.body?.cancel()
  t.equal(childLog().length, seen, 'the server read nothing more')
  const fine = await post(bridge, { jsonrpc: '2.0', id: 5, method: 'echo', params: { still: 'up' } }, session)
  t.match(fine.messages, [{ id: 5, result: { still: 'up' } }])
})

t.test(
  'protocol version rules: an unsupported MCP-Protocol-Version is 400, batches only where the version has them, ids unique',
  async (t) => {
    const { bridge, session, childLog } = await misbehaving(t)
    const seen = childLog().length
    const send = async (body: unknown, version: string | undefined, method = 'POST') => {
      const res = await fetch(bridge.url, {
        method,
        headers: {
          'content-type': 'application/json',
          accept: ACCEPT,
          'mcp-session-id': session,
          ...(version === undefined ? {} : { 'mcp-protocol-version': version }),
        },
        ...(method === 'POST' ? { body: JSON.stringify(body) } : {}),
      })
      const text = await res.text()
      return { status: res.status, json: text === '' ? undefined : (JSON.parse(text) as unknown) }
    }
    const echo = (id: number) => ({ jsonrpc: '2.0', id, method: 'echo', params: { n: id } })
    const unsupported = await send(echo(1), '1999-01-01')
    t.equal(unsupported.status, 400, 'an unknown version (2025-06-18 transports: MUST be 400)')
    t.match(unsupported.json, { id: null, error: { code: -32600 } })
    const modern = await send(echo(2), '2026-07-28')
    t.equal(modern.status, 400, 'the stateless era is not served here')
    t.match(modern.json, { error: { code: -32600 } }, 'not a 2026-07-28 error: a dual-era client falls back')
    const stream = await send(undefined, '1999-01-01', 'GET')
    t.equal(stream.status, 400, 'GET too')
    const batch = await send([echo(3), echo(4)], '2025-11-25')
    t.equal(batch.status, 400, '2025-06-18 removed batches')
    t.match(batch.json, { error: { code: -32600 } })
    const twice = await send([echo(5), echo(5)], '2025-03-26')
    t.equal(twice.status, 400, 'one id twice in a batch')
    t.match(twice.json, { error: { code: -32600 } })
    t.equal(childLog().length, seen, 'the server read none of it')
    const fine = await send(echo(6), '2025-11-25')
    t.equal(fine.status, 200)
    t.match(fine.json, { id: 6, result: { n: 6 } })
    const batched = await send([echo(7), echo(8)], '2025-03-26')
    t.match(batched.json, [{ id: 7 }, { id: 8 }], 'a 2025-03-26 batch is still served')
  },
)

t.test('a batch is answered as a batch', async (t) => {
  const { bridge, session } = await misbehaving(t)
  const reply = await post(
    bridge,
    [
      { jsonrpc: '2.0', id: 1, method: 'echo', params: { a: 1 } },
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'x', progress: 1 } },
      { jsonrpc: '2.0', id: 2, method: 'echo', params: { b: 2 } },
    ],
    session,
  )
  t.equal(reply.status, 200)
  t.match(reply.messages, [
    [
      { id: 1, result: { a: 1 } },
      { id: 2, result: { b: 2 } },
    ],
  ])
})

t.test(
  '--max-sessions 1: a second session is refused with SVD_BRIDGE_SESSION_LIMIT until the first ends',
  async (t) => {
    const { bridge, session } = await misbehaving(t, { maxSessions: 1 })
    const second = await post(bridge, INIT)
    t.equal(second.status, 503)
    t.equal(second.headers.get('retry-after'), '1')
    t.match(second.messages, [{ error: { code: -31005, data: { code: 'SVD_BRIDGE_SESSION_LIMIT' } } }])
    const del = await fetch(bridge.url, { method: 'DELETE', headers: { 'mcp-session-id': session } })
    t.equal(del.status, 200)
    const third = await post(bridge, INIT)
    t.equal(third.status, 200, 'the slot is free again')
  },
)

t.test('an idle session is ended after --session-idle-timeout', async (t) => {
  const { bridge } = await misbehaving(t, { sessionIdleTimeoutMs: 200 })
  t.equal(bridge.sessionCount, 1)
  await until(() => bridge.sessionCount === 0, 'the idle session to end')
  t.pass('ended')
})

t.test('a server command that cannot start answers initialize with SVD_BRIDGE_CHILD_EXITED', async (t) => {
  const bridge = await startBridge(t, { command: '/nonexistent/mcp-server', args: [] })
  const reply = await post(bridge, INIT)
  t.match(reply.messages, [{ id: 0, error: { code: -31001, message: /ENOENT/ } }])
  t.equal(bridge.sessionCount, 0)
})
