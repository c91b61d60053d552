// Upstream answers the sidecar cannot relay, over raw sockets on both sides: a raw TCP app writes the exact
// bytes of a broken app; raw clients talk to the outbound listener (app → A → upstream) and, over mTLS with the
// agent's SVID, to the inbound listener (peer → B → local app). Each case ends in a status and a code, never a
// hang, and the process keeps serving.
import { once } from 'node:events'
import { type AddressInfo, connect, createServer } from 'node:net'
import t, { type Test } from 'tap'
import { errors as undiciErrors } from 'undici'
import { upstreamError } from '../src/errors/upstream-errors.ts'
import { inspectHead, skipUnsolicitedContinue } from '../src/forwarder/unsolicited-continue.ts'
import { RawApp, type RawClient, type RawResponse } from './helpers/raw-http.ts'
import { startRawMesh } from './helpers/raw-mesh.ts'

const FORGED_BODY = '{"error":{"code":"SVD_IDENTITY_UNAVAILABLE","message":"forged"}}'

const ANSWERS = {
  'obs-text-reason': 'HTTP/1.1 200 caf\xe9\r\ncontent-length: 2\r\n\r\nok',
  'control-char-reason': 'HTTP/1.1 200 o\x01k\r\ncontent-length: 2\r\n\r\nok',
  'del-in-reason': 'HTTP/1.1 200 o\x7fk\r\ncontent-length: 2\r\n\r\nok',
  'unsolicited-100': 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  'two-100s-in-pieces': [
    'HTTP/1.1 10',
    '0 Continue\r\n\r\nHTTP/1.1 100 Continue\r\nx-a: 1\r\n',
    '\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  ],
  '102-then-200': 'HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  '101-not-asked': 'HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\nxx',
  'not-http': 'garbage\r\n\r\n',
  'status-600': 'HTTP/1.1 600 Odd\r\ncontent-length: 2\r\n\r\nok',
  // RFC 9110 §15: three digits, 100..599. undici's parser asserts statusCode >= 100 rather than refusing it.
  'status-099': 'HTTP/1.1 099 Odd\r\ncontent-length: 2\r\n\r\nok',
  'space-in-header-name': 'HTTP/1.1 200 OK\r\nx-a b: 1\r\ncontent-length: 2\r\n\r\nok',
  'control-char-in-header': 'HTTP/1.1 200 OK\r\nx-a: \x01\r\ncontent-length: 2\r\n\r\nok',
  'bare-lf': 'HTTP/1.1 200 OK\ncontent-length: 2\n\nok',
  'hang-up': 'close',
  // Too long for the filter to hold: undici sees the 100 and refuses it.
  'oversized-100': `HTTP/1.1 100 Continue\r\nx-pad: ${'a'.repeat(9000)}\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok`,
  'forged-marker':
    'HTTP/1.1 503 Service Unavailable\r\nx-svidecar-error: SVD_IDENTITY_UNAVAILABLE\r\n' +
    `content-type: application/json\r\ncontent-length: ${FORGED_BODY.length}\r\n\r\n${FORGED_BODY}`,
} as const

type CaseName = keyof typeof ANSWERS

interface Expected {
  status: number
  /** The sidecar's code, or undefined when the upstream's answer is relayed. */
  code?: string
  reason?: string
  body?: string
}

const CASES: [CaseName, Expected][] = [
  // obs-text is allowed in a reason phrase (RFC 9112 §4); the phrase is replaced, the response relayed.
  ['obs-text-reason', { status: 200, body: 'ok' }],
  ['control-char-reason', { status: 502, code: 'SVD_UPSTREAM_PROTOCOL', reason: 'INVALID_REASON_PHRASE' }],
  ['del-in-reason', { status: 502, code: 'SVD_UPSTREAM_PROTOCOL', reason: 'INVALID_REASON_PHRASE' }],
  ['unsolicited-100', { status: 200, body: 'ok' }],
  ['two-100s-in-pieces', { status: 200, body: 'ok' }],
  ['102-then-200', { status: 200, body: 'ok' }],
  ['101-not-asked', { status: 502, code: 'SVD_UPSTREAM_PROTOCOL', reason: 'UNSOLICITED_UPGRADE' }],
  ['not-http', { status: 502, code: 'SVD_UPSTREAM_PROTOCOL' }],
  ['status-600', { status: 502, code: 'SVD_UPSTREAM_PROTOCOL', reason: 'INVALID_STATUS' }],
  ['status-099', { status: 502, code: 'SVD_UPSTREAM_PROTOCOL', reason: 'INVALID_STATUS' }],
  ['space-in-header-name', { status: 502, code: 'SVD_UPSTREAM_PROTOCOL' }],
  ['control-char-in-header', { status: 502, code: 'SVD_UPSTREAM_PROTOCOL' }],
  ['bare-lf', { status: 502, code: 'SVD_UPSTREAM_PROTOCOL' }],
  ['hang-up', { status: 502, code: 'SVD_UPSTREAM_RESET' }],
  ['oversized-100', { status: 502, code: 'SVD_UPSTREAM_PROTOCOL', reason: 'UNEXPECTED_RESPONSE' }],
]

function bodyCode(res: RawResponse): string | undefined {
  try {
    return (JSON.parse(res.body) as { error?: { code?: string } }).error?.code
  } catch {
    return undefined
  }
}

function checkCase(
  t: Test,
  res: RawResponse,
  expected: Expected,
  label: string,
  logs: Record<string, unknown>[],
): void {
  t.equal(res.status, expected.status, `${label}: status`)
  t.equal(res.headers['x-svidecar-error'], expected.code, `${label}: code`)
  if (expected.code !== undefined) {
    t.equal(bodyCode(res), expected.code, `${label}: the JSON body names the code`)
    t.equal(res.headers['retry-after'], undefined, `${label}: no retry-after for a broken upstream`)
    // The reason never reaches the client; the log has it (both sidecars publish on this process's channels).
    const logged = logs.findLast((r) => r.msg === 'upstream exchange failed')
    t.match(logged, { level: 'warn', code: expected.code }, `${label}: logged`)
    if (expected.reason !== undefined) t.equal(logged?.reason, expected.reason, `${label}: reason`)
  }
  if (expected.body !== undefined) t.equal(res.body, expected.body, `${label}: body relayed`)
}

t.test('malformed and unexpected upstream answers, outbound and inbound', async (t) => {
  const app = await RawApp.start(t, ANSWERS)
  const edge = await startRawMesh(t, app.port)
  const directions: [string, () => Promise<RawClient>, string][] = [
    ['outbound', edge.outboundClient, 'raw.test'],
    ['inbound', edge.inboundClient, 'mcp.test'],
  ]
  for (const [direction, open, host] of directions) {
    for (const [name, expected] of CASES) {
      const seen = app.requestLines.length
      // A fresh connection per case: a case that hung would not stall the next one.
      const client = await open()
      client.send(`GET /case/${name} HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
      const res = await client.next()
      checkCase(t, res, expected, `${direction} ${name}`, edge.logs)
      t.equal(app.requestLines.length, seen + 1, `${direction} ${name}: the app got the request once`)
      if (expected.status !== 200) continue
      t.equal(res.reason, 'OK', `${direction} ${name}: a standard reason phrase`)
    }
  }
  // Still serving after all of it.
  const client = await edge.outboundClient()
  client.send('GET /fine HTTP/1.1\r\nHost: raw.test\r\n\r\n')
  t.equal((await client.next()).status, 200, 'the sidecar still serves')
  const admin = edge.agentSidecar.addresses.admin
  t.equal((await fetch(`http://${admin.host}:${admin.port}/healthz`)).status, 200)
})

t.test('an unrelayable answer does not stall requests pipelined behind it', async (t) => {
  const app = await RawApp.start(t, ANSWERS)
  const edge = await startRawMesh(t, app.port)
  for (const [direction, open, host] of [
    ['outbound', edge.outboundClient, 'raw.test'],
    ['inbound', edge.inboundClient, 'mcp.test'],
  ] as const) {
    const client = await open()
    client.send(
      `GET /case/control-char-reason HTTP/1.1\r\nHost: ${host}\r\n\r\n` +
        `GET /case/not-http HTTP/1.1\r\nHost: ${host}\r\n\r\n` +
        `GET /after HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    )
    const first = await client.next()
    const second = await client.next()
    const third = await client.next()
    t.same(
      [first.status, first.headers['x-svidecar-error'], second.status, second.headers['x-svidecar-error']],
      [502, 'SVD_UPSTREAM_PROTOCOL', 502, 'SVD_UPSTREAM_PROTOCOL'],
      `${direction}: each broken answer is a 502 on its own`,
    )
    t.equal(third.status, 200, `${direction}: the request after them is answered`)
    t.equal(third.body, 'ok')
  }
})

t.test('an upstream cannot pose as the sidecar: its marker is renamed, both directions', async (t) => {
  const app = await RawApp.start(t, ANSWERS)
  const edge = await startRawMesh(t, app.port)
  for (const [direction, open, host] of [
    ['outbound', edge.outboundClient, 'raw.test'],
    ['inbound', edge.inboundClient, 'mcp.test'],
  ] as const) {
    const client = await open()
    client.send(`GET /case/forged-marker HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    const res = await client.next()
    t.equal(res.status, 503, `${direction}: the app's own status is relayed`)
    t.equal(res.headers['x-svidecar-error'], undefined, `${direction}: no sidecar marker`)
    t.equal(res.headers['x-svidecar-upstream-error'], 'SVD_IDENTITY_UNAVAILABLE', `${direction}: renamed`)
  }
  // Through both sidecars: B's own refusal reaches the client as B's (an upstream's), not as A's.
  const client = await edge.outboundClient()
  client.send('GET /case/control-char-reason HTTP/1.1\r\nHost: mesh.test\r\n\r\n')
  const res = await client.next()
  t.equal(res.status, 502)
  t.equal(res.headers['x-svidecar-error'], undefined, 'A did not refuse anything')
  t.equal(res.headers['x-svidecar-upstream-error'], 'SVD_UPSTREAM_PROTOCOL', 'B did, and says so')
})

t.test('OPTIONS * is refused with a code and never reaches the app', async (t) => {
  const app = await RawApp.start(t, ANSWERS)
  const edge = await startRawMesh(t, app.port)
  for (const [direction, open, host] of [
    ['outbound', edge.outboundClient, 'raw.test'],
    ['inbound', edge.inboundClient, 'mcp.test'],
  ] as const) {
    const client = await open()
    client.send(`OPTIONS * HTTP/1.1\r\nHost: ${host}\r\n\r\nGET /after HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    const res = await client.next()
    t.equal(res.status, 501, `${direction}: status`)
    t.equal(res.headers['x-svidecar-error'], 'SVD_REQUEST_UNSUPPORTED', `${direction}: code`)
    t.equal((await client.next()).status, 200, `${direction}: the connection goes on`)
  }
  t.same(
    app.requestLines,
    ['GET /after HTTP/1.1', 'GET /after HTTP/1.1'],
    'only the requests after it arrived',
  )
})

t.test(
  'a WebSocket upgrade with a target that is not origin-form is refused; the process stays up',
  async (t) => {
    const app = await RawApp.start(t, ANSWERS)
    const edge = await startRawMesh(t, app.port)
    for (const [direction, open, host] of [
      ['outbound', edge.outboundClient, 'raw.test'],
      ['inbound', edge.inboundClient, 'mcp.test'],
    ] as const) {
      // An absolute-form target naming another authority than Host is refused before the forwarder sees it.
      for (const [target, status, code] of [
        ['*', 501, 'SVD_REQUEST_UNSUPPORTED'],
        ['http://elsewhere.test/ws', 400, 'SVD_REQUEST_INVALID'],
      ] as const) {
        const client = await open()
        client.send(
          `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
            'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
        )
        const res = await client.next()
        t.equal(res.status, status, `${direction} ${target}: status`)
        t.equal(res.headers['x-svidecar-error'], code, `${direction} ${target}: code`)
      }
    }
    t.same(app.received, [], 'nothing reached the app')
    const client = await edge.outboundClient()
    client.send('GET /fine HTTP/1.1\r\nHost: raw.test\r\n\r\n')
    t.equal((await client.next()).status, 200, 'still serving')
  },
)

t.test('a WebSocket upgrade answered with bytes that cannot be relayed is a 502 with a code', async (t) => {
  const app = await RawApp.start(t, ANSWERS)
  const edge = await startRawMesh(t, app.port)
  const cases: [CaseName, string][] = [
    ['control-char-reason', 'SVD_UPSTREAM_PROTOCOL'],
    ['not-http', 'SVD_UPSTREAM_PROTOCOL'],
    ['obs-text-reason', 'SVD_UPSTREAM_PROTOCOL'],
    ['hang-up', 'SVD_UPSTREAM_RESET'],
  ]
  for (const [direction, open, host] of [
    ['outbound', edge.outboundClient, 'raw.test'],
    ['inbound', edge.inboundClient, 'mcp.test'],
  ] as const) {
    for (const [name, code] of cases) {
      const client = await open()
      client.send(
        `GET /case/${name} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      )
      const res = await client.next()
      t.equal(res.status, 502, `${direction} ${name}: status`)
      t.equal(res.headers['x-svidecar-error'], code, `${direction} ${name}: code`)
    }
  }
})

t.test('upstream failures are logged above debug with their cause', async (t) => {
  const app = await RawApp.start(t, ANSWERS)
  const edge = await startRawMesh(t, app.port)
  const client = await edge.outboundClient()
  client.send('GET /case/not-http HTTP/1.1\r\nHost: raw.test\r\n\r\n')
  t.equal((await client.next()).status, 502)
  const record = edge.logs.find((r) => r.msg === 'upstream exchange failed' && r.upstream === 'raw')
  t.match(record, {
    level: 'warn',
    code: 'SVD_UPSTREAM_PROTOCOL',
    status: 502,
    midResponse: false,
    cause: { name: 'HTTPParserError', message: /HTTP\/1\.1 protocol/ },
  })
})

t.test('one mapping for socket and TLS errors, whichever phase reports them', async (t) => {
  const errno = (code: string) => Object.assign(new Error(code), { code })
  const table: [unknown, 'exchange' | 'tls-handshake' | undefined, string, string][] = [
    [errno('ECONNRESET'), 'exchange', 'SVD_UPSTREAM_RESET', 'ECONNRESET'],
    [errno('ECONNRESET'), 'tls-handshake', 'SVD_UPSTREAM_RESET', 'ECONNRESET'],
    [errno('EPIPE'), 'tls-handshake', 'SVD_UPSTREAM_RESET', 'EPIPE'],
    [errno('ECONNREFUSED'), 'tls-handshake', 'SVD_UPSTREAM_UNAVAILABLE', 'ECONNREFUSED'],
    [errno('ECONNREFUSED'), 'exchange', 'SVD_UPSTREAM_UNAVAILABLE', 'ECONNREFUSED'],
    [errno('ETIMEDOUT'), 'tls-handshake', 'SVD_UPSTREAM_CONNECT_TIMEOUT', 'ETIMEDOUT'],
    [
      errno('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'),
      'tls-handshake',
      'SVD_UPSTREAM_TLS_FAILED',
      'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
    ],
    [new Error('no code'), 'tls-handshake', 'SVD_UPSTREAM_TLS_FAILED', 'TLS_HANDSHAKE_FAILED'],
    [new Error('no code'), 'exchange', 'SVD_INTERNAL', 'UNKNOWN'],
    [new undiciErrors.SocketError('other side closed'), undefined, 'SVD_UPSTREAM_RESET', 'UND_ERR_SOCKET'],
    [new undiciErrors.SocketError('bad response'), undefined, 'SVD_UPSTREAM_PROTOCOL', 'UNEXPECTED_RESPONSE'],
    [
      new undiciErrors.NotSupportedError('expect header not supported'),
      undefined,
      'SVD_INTERNAL',
      'UND_ERR_NOT_SUPPORTED',
    ],
    [new undiciErrors.HeadersTimeoutError(), undefined, 'SVD_UPSTREAM_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT'],
    [new undiciErrors.RequestAbortedError(), undefined, 'SVD_REQUEST_INVALID', 'UND_ERR_ABORTED'],
    [errno('ERR_HTTP2_STREAM_ERROR'), undefined, 'SVD_UPSTREAM_RESET', 'ERR_HTTP2_STREAM_ERROR'],
    [
      errno('ERR_HTTP2_INVALID_HEADER_VALUE'),
      undefined,
      'SVD_UPSTREAM_PROTOCOL',
      'ERR_HTTP2_INVALID_HEADER_VALUE',
    ],
  ]
  for (const [err, phase, code, reason] of table) {
    const e = upstreamError(err, 'u', phase)
    t.match(e, { code, reason }, `${(err as Error).message} (${phase ?? 'exchange'}) → ${code}`)
    t.equal(e.cause, err, 'the foreign error is kept as the cause')
    t.notMatch(e.message, /other side|expect header/, 'the foreign words stay out of the message')
  }
})

t.test('a reset during the mTLS handshake and one mid-exchange get the same code', async (t) => {
  const app = await RawApp.start(t, ANSWERS)
  const edge = await startRawMesh(t, app.port)
  const client = await edge.outboundClient()
  client.send('GET /x HTTP/1.1\r\nHost: reset.test\r\n\r\n')
  const res = await client.next()
  t.equal(res.status, 502)
  t.equal(res.headers['x-svidecar-error'], 'SVD_UPSTREAM_RESET', 'handshake reset (tls/client-tls.ts)')
  const other = await edge.outboundClient()
  other.send('GET /case/hang-up HTTP/1.1\r\nHost: raw.test\r\n\r\n')
  t.equal((await other.next()).headers['x-svidecar-error'], 'SVD_UPSTREAM_RESET', 'exchange reset (undici)')
  const gone = await edge.outboundClient()
  gone.send('GET /x HTTP/1.1\r\nHost: gone.test\r\n\r\n')
  const unreachable = await gone.next()
  t.equal(unreachable.status, 503, 'only an unreachable upstream is a 503')
  t.equal(unreachable.headers['x-svidecar-error'], 'SVD_UPSTREAM_UNAVAILABLE')
  t.equal(unreachable.headers['retry-after'], '1')
})

t.test('the 100-Continue filter decides only on whole heads', async (t) => {
  const v = (s: string) => inspectHead(Buffer.from(s, 'latin1'))
  t.equal(v('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200'), 25, 'a whole 100 head: its length')
  t.equal(v('HTTP/1.0 100\r\n\r\n'), 16, 'no reason phrase, HTTP/1.0')
  t.equal(v('HTTP/1.1 100 Continue\r\nx-a: 1\r\n\r\n'), 33, 'with a header')
  t.equal(v('HTTP/1.1 10'), 'more', 'a prefix of a 100: wait')
  t.equal(v('HTTP/1.1 100 Continue\r\n'), 'more', 'an unfinished 100 head: wait')
  t.equal(v('HTTP/1.1 200 OK\r\n\r\n'), 'final')
  t.equal(v('HTTP/1.1 1000 x\r\n\r\n'), 'final', 'not a 100')
  t.equal(v('HTTP/1.1 101 Switching\r\n\r\n'), 'final', '101 is undici’s to judge')
  t.equal(v('garbage'), 'final')
  t.equal(v(`HTTP/1.1 100 Continue\r\nx: ${'a'.repeat(9000)}`), 'final', 'an endless 100 head is handed on')
  t.equal(
    v(`HTTP/1.1 100 Continue\r\nx: ${'a'.repeat(9000)}\r\n\r\n`),
    'final',
    'so is a whole one that long',
  )
})

t.test(
  'the 100-Continue filter on a real socket: armed by a request line; read(0) takes nothing',
  async (t) => {
    const server = createServer((s) => {
      s.once('data', () =>
        s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'),
      )
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => server.close())
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
    t.teardown(() => socket.destroy())
    await once(socket, 'connect')
    skipUnsolicitedContinue(socket)
    socket.write('GET / HTTP/1.1\r\nhost: a\r\n\r\n', 'latin1')
    let got = ''
    while (!got.endsWith('ok')) {
      await once(socket, 'readable')
      t.equal(socket.read(0), null, 'read(0) returns nothing')
      got += (socket.read() as Buffer | null)?.toString('latin1') ?? ''
    }
    t.equal(got, 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok', 'the 100 is gone, the rest intact')
  },
)
