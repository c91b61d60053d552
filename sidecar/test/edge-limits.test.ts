// Limits at the HTTP edge over raw sockets, on the outbound (plaintext) and inbound (mTLS) listeners and through
// the mesh: body size (declared and streamed), stalled bodies, silent and idle connections, header counts that
// survive a hop, the connection limit and draining. Each case checks status, code, what the app received, and
// that the sidecar still serves afterwards.

import t from 'tap'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { rawExchange, startEdge, stillServing } from './helpers/edge.ts'

const SIDES = ['outbound', 'inbound'] as const
const LIMITS = '{ maxBodyBytes: 1000, bodyIdleTimeout: 1s, headersTimeout: 1s, idleTimeout: 1s }'

const chunk = (n: number) => `${n.toString(16)}\r\n${'b'.repeat(n)}\r\n`

t.test(
  'maxBodyBytes: a declared Content-Length over the limit gets 413 before anything is forwarded',
  async (t) => {
    const edge = await startEdge(t, LIMITS)
    for (const side of SIDES) {
      const before = edge.app.received.length
      const r = await rawExchange(await edge.connect[side](), [
        `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n${'a'.repeat(100)}`,
      ])
      t.equal(r.status, 413, `${side}: status`)
      t.equal(r.code, 'SVD_REQUEST_BODY_TOO_LARGE', `${side}: code`)
      t.equal(edge.app.received.length, before, `${side}: the app received nothing`)
      const ok = await rawExchange(await edge.connect[side](), [
        `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n${'a'.repeat(1000)}`,
      ])
      t.equal(ok.status, 200, `${side}: exactly the limit passes`)
      t.equal(edge.app.received.at(-1)?.bytes, 1000)
      t.equal(await stillServing(edge, side), 200)
    }
  },
)

t.test(
  'maxBodyBytes: a chunked body is counted while it streams and cut before the upstream gets more',
  async (t) => {
    const edge = await startEdge(t, LIMITS)
    for (const target of ['outbound', 'inbound', 'mesh'] as const) {
      const side = target === 'mesh' ? 'outbound' : target
      const before = edge.app.received.length
      const r = await rawExchange(await edge.connect[side](), [
        `POST /up HTTP/1.1\r\nHost: ${target === 'mesh' ? 'mesh' : 'x'}\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(600)}`,
        () =>
          waitFor(
            () => (edge.app.received[before]?.bytes ?? 0) === 600,
            `${target}: the first 600 bytes at the app`,
          ),
        chunk(600),
      ])
      t.equal(r.status, 413, `${target}: status`)
      t.equal(r.code, 'SVD_REQUEST_BODY_TOO_LARGE', `${target}: code`)
      t.ok(r.closed, `${target}: connection closed`)
      const got = edge.app.received[before]
      await waitFor(() => got?.aborted === true, `${target}: the app's request to be aborted`)
      t.equal(got?.bytes, 600, `${target}: the app never got more than the limit`)
      t.equal(edge.app.received.length, before + 1)
      t.equal(await stillServing(edge, side), 200)
    }
  },
)

t.test(
  'maxBodyBytes: once the response has started, going over the limit closes the connection',
  async (t) => {
    const edge = await startEdge(t, LIMITS)
    for (const side of SIDES) {
      const before = edge.app.received.length
      const r = await rawExchange(await edge.connect[side](), [
        `POST /early HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(900)}`,
        () => waitFor(() => (edge.app.received[before]?.bytes ?? 0) === 900, `${side}: 900 bytes at the app`),
        (received) => waitFor(() => received().includes('\r\n\r\n'), `${side}: the response head`),
        chunk(200),
      ])
      t.equal(r.status, 200, `${side}: the head had gone out`)
      t.ok(r.closed, `${side}: then the connection was closed`)
      t.notMatch(r.text, /done/, `${side}: the response was not completed`)
      const got = edge.app.received[before]
      await waitFor(() => got?.aborted === true, `${side}: the app's request to be aborted`)
      t.equal(got?.bytes, 900, `${side}: the app never got more than the limit`)
    }
  },
)

t.test(
  'a body that stops arriving is cut after bodyIdleTimeout: 408, and the app’s request is aborted',
  async (t) => {
    const edge = await startEdge(t, LIMITS)
    for (const target of ['outbound', 'inbound', 'mesh'] as const) {
      const side = target === 'mesh' ? 'outbound' : target
      const before = edge.app.received.length
      const r = await rawExchange(await edge.connect[side](), [
        `POST /up HTTP/1.1\r\nHost: ${target === 'mesh' ? 'mesh' : 'x'}\r\nContent-Length: 10\r\n\r\nabc`,
      ])
      t.equal(r.status, 408, `${target}: status`)
      t.equal(r.code, 'SVD_REQUEST_BODY_TIMEOUT', `${target}: code`)
      t.ok(r.closed, `${target}: connection closed`)
      const got = edge.app.received[before]
      await waitFor(() => got?.aborted === true, `${target}: the app's request to be aborted`)
      t.equal(got?.bytes, 3, `${target}: the app got what was sent and nothing else`)
      t.equal(await stillServing(edge, side), 200)
    }
    const metrics = await edge.metrics('agent')
    t.match(
      metrics,
      /svidecar_requests_total\{listener="egress",direction="outbound",status_class="4xx",code="SVD_REQUEST_BODY_TIMEOUT"\} 2/,
    )
  },
)

t.test(
  'the upstream answers without reading the body: the rest is read away, a stall after that is still cut',
  async (t) => {
    // A long keep-alive limit, so only the body idle limit can end the stalled connection.
    const edge = await startEdge(t, '{ bodyIdleTimeout: 1s, idleTimeout: 60s }')
    for (const side of SIDES) {
      const stalled = await rawExchange(await edge.connect[side](), [
        `POST /now HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n${'a'.repeat(10)}`,
        (received) => waitFor(() => received().endsWith('now'), `${side}: the early answer`),
        'b'.repeat(10),
      ])
      t.equal(stalled.status, 200, `${side}: answered`)
      t.ok(stalled.closed, `${side}: the client that never finished its body was cut`)
      const finished = await rawExchange(await edge.connect[side](), [
        `POST /now HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n${'a'.repeat(10)}`,
        (received) => waitFor(() => received().endsWith('now'), `${side}: the early answer`),
        'b'.repeat(90),
        'GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      ])
      t.match(
        finished.text,
        /now[\s\S]*HTTP\/1\.1 200 OK[\s\S]*"bytes":0/,
        `${side}: a client that finished it keeps its connection`,
      )
      t.ok(finished.closed)
    }
  },
)

t.test('a slow upstream holding the body back is not a stalled client', async (t) => {
  // 64 MB: far more than the socket buffers hold, so the client is paused by back-pressure while the app waits.
  const size = 64 * 1024 * 1024
  const open = await startEdge(t, '{ bodyIdleTimeout: 1s }')
  open.app.server.once('request', (req) => {
    req.pause()
    setTimeout(() => req.resume(), 2500)
  })
  const ok = await rawExchange(await open.connect.outbound(), [
    `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`,
    Buffer.alloc(size, 0x61),
  ])
  t.equal(ok.status, 200, 'a paused upstream does not count as client idle time')
  t.equal(open.app.received.at(-1)?.bytes, size)
})

t.test(
  'a connection that sends nothing is cut with 408 after headersTimeout, not left half open',
  async (t) => {
    const edge = await startEdge(t, LIMITS)
    for (const side of SIDES) {
      const r = await rawExchange(await edge.connect[side](), [])
      t.equal(r.status, 408, `${side}: status`)
      t.equal(r.code, 'SVD_REQUEST_TIMEOUT', `${side}: code`)
      t.ok(r.closed, `${side}: closed by the sidecar although the client never hung up`)
    }
    const metrics = await edge.metrics('server')
    t.match(
      metrics,
      /svidecar_connections_refused_total\{listener="public",direction="inbound",code="SVD_REQUEST_TIMEOUT"\} 1/,
    )
    t.ok(edge.logs.some((l) => l.msg === 'connection refused' && l.code === 'SVD_REQUEST_TIMEOUT'))
  },
)

t.test(
  'keep-alive connections idle past idleTimeout are closed and counted; a busy one is not',
  async (t) => {
    const edge = await startEdge(t, LIMITS)
    for (const side of SIDES) {
      const idle = await edge.connect[side]()
      const busy = await edge.connect[side]()
      let busyText = ''
      busy.setEncoding('latin1')
      busy.on('data', (d: string) => {
        busyText += d
      })
      busy.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\n')
      await waitFor(() => busyText.includes('"bytes":0}'), `${side}: first response`)
      const held = new Promise((r) => edge.app.events.once('held', r))
      busy.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n')
      await held
      let idleClosed = false
      idle.on('close', () => {
        idleClosed = true
      })
      const r = await rawExchange(idle, ['GET /once HTTP/1.1\r\nHost: x\r\n\r\n'])
      t.equal(r.status, 200, `${side}: answered`)
      t.ok(r.closed && idleClosed, `${side}: then closed when idle`)
      t.notOk(busy.destroyed, `${side}: the connection with a request in flight is still open`)
      edge.app.release()
      await waitFor(() => busyText.includes('released'), `${side}: the held response`)
      busy.destroy()
    }
    const metrics = await edge.metrics('agent')
    t.match(
      metrics,
      /svidecar_connections_refused_total\{listener="egress",direction="outbound",code="SVD_CONNECTION_IDLE"\} [1-9]/,
    )
  },
)

t.test('header count: what one sidecar lets through, the next one does too; one more is 431', async (t) => {
  const edge = await startEdge(t)
  const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-F${i}: ${i}\r\n`).join('')
  const before = edge.app.received.length
  const r = await rawExchange(await edge.connect.outbound(), [
    `POST /up HTTP/1.1\r\nHost: mesh\r\n${fields(100)}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk(5)}0\r\n\r\n`,
  ])
  t.equal(r.status, 200, '100 fields (the default limit) pass both sidecars')
  t.equal(edge.app.received.length, before + 1)
  t.equal(edge.app.received.at(-1)?.rawHeaders.filter((h) => h.startsWith('X-F')).length, 100)
  const tooMany = await rawExchange(await edge.connect.outbound(), [
    `GET /up HTTP/1.1\r\nHost: mesh\r\n${fields(101)}\r\n`,
  ])
  t.equal(tooMany.status, 431)
  t.equal(tooMany.code, 'SVD_REQUEST_HEADERS_TOO_LARGE')
  const inbound = await rawExchange(
    await edge.connect.inbound(),
    [
      `GET /up HTTP/1.1\r\nHost: x\r\n${fields(100)}Connection: keep-alive, X-F1\r\nTE: trailers\r\nKeep-Alive: timeout=5\r\n\r\n`,
      () => waitFor(() => edge.app.received.length === before + 2, 'the inbound request at the app'),
    ],
    1000,
  )
  t.equal(inbound.status, 200, 'inbound: hop-by-hop fields are not counted')
  const flood = await rawExchange(await edge.connect.inbound(), [
    `GET /up HTTP/1.1\r\nHost: x\r\n${fields(90)}${'Connection: keep-alive\r\n'.repeat(30)}\r\n`,
  ])
  t.equal(flood.status, 431, 'but they are not unlimited')
  t.equal(edge.app.received.length, before + 2)
})

t.test(
  'over maxConnections: the JSON 503 SVD_OVERLOADED, then close; room again once one leaves',
  async (t) => {
    const edge = await startEdge(t, '{ maxConnections: 2 }')
    for (const side of SIDES) {
      const first = await edge.connect[side]()
      const second = await edge.connect[side]()
      const before = edge.app.received.length
      const r = await rawExchange(await edge.connect[side](), ['GET /x HTTP/1.1\r\nHost: x\r\n\r\n'])
      t.equal(r.status, 503, `${side}: status`)
      t.equal(r.code, 'SVD_OVERLOADED', `${side}: code`)
      t.match(r.text, /"code":"SVD_OVERLOADED"/, `${side}: JSON body`)
      t.ok(r.closed, `${side}: closed`)
      t.equal(edge.app.received.length, before, `${side}: nothing reached the app`)
      first.destroy()
      second.destroy()
      // The sidecar sees the close a moment later; poll until a fresh connection is served.
      const end = Date.now() + 5000
      let status = 0
      while (status !== 200 && Date.now() < end) status = await stillServing(edge, side)
      t.equal(status, 200, `${side}: served again`)
    }
    const metrics = await edge.metrics('server')
    t.match(
      metrics,
      /svidecar_connections_refused_total\{listener="public",direction="inbound",code="SVD_OVERLOADED"\} [1-9]/,
    )
    t.ok(edge.logs.some((l) => l.msg === 'connection refused' && l.code === 'SVD_OVERLOADED'))
  },
)

t.test('draining: a request that arrives on an open connection gets 503 SVD_SHUTTING_DOWN', async (t) => {
  for (const side of SIDES) {
    const edge = await startEdge(t)
    const socket = await edge.connect[side]()
    const held = new Promise((r) => edge.app.events.once('held', r))
    let text = ''
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => {
      text += d
    })
    socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n')
    await held
    const sidecar = side === 'outbound' ? edge.agent : edge.server
    const closing = sidecar.close(5000)
    // Pipelined behind the held request, so Node hands it over only after draining began.
    socket.write('GET /late HTTP/1.1\r\nHost: x\r\n\r\n')
    edge.app.release()
    await waitFor(() => /SVD_SHUTTING_DOWN/.test(text), `${side}: the refusal`)
    t.match(
      text,
      /^HTTP\/1\.1 200 [\s\S]*released[\s\S]*HTTP\/1\.1 503 /,
      `${side}: the held request finished, the late one got 503`,
    )
    t.notOk(
      edge.app.received.some((r) => r.url.endsWith('/late')),
      `${side}: the late request never reached the app`,
    )
    await closing
  }
})

t.test(
  'metrics: client aborts are counted apart, status classes are real, codes come from the table',
  async (t) => {
    const edge = await startEdge(t)
    t.equal(await stillServing(edge, 'outbound'), 200)
    const socket = await edge.connect.outbound()
    const held = new Promise((r) => edge.app.events.once('held', r))
    socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n')
    await held
    socket.destroy()
    const text = async () => edge.metrics('agent')
    const end = Date.now() + 5000
    let metrics = await text()
    while (!/svidecar_requests_aborted_total\{[^}]*\} 1/.test(metrics) && Date.now() < end)
      metrics = await text()
    t.match(metrics, /svidecar_requests_aborted_total\{listener="egress",direction="outbound"\} 1/)
    const classes = [...metrics.matchAll(/status_class="([^"]*)"/g)].map((m) => m[1])
    t.ok(classes.length > 0, 'some requests were counted')
    for (const c of classes) t.match(c, /^[1-5]xx$/)
    for (const m of metrics.matchAll(/[{,]code="([^"]*)"/g)) t.match(m[1], /^(SVD_[A-Z_]+)?$/)
    t.notMatch(metrics, /CLIENT_ABORTED/)
    // The upstream goes away: its failure is logged above debug, with the cause.
    await edge.app.close()
    const r = await rawExchange(await edge.connect.outbound(), [
      'GET /gone HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ])
    t.equal(r.status, 503)
    t.equal(r.code, 'SVD_UPSTREAM_UNAVAILABLE')
    const line = edge.logs.find((l) => l.msg === 'upstream exchange failed')
    t.match(line, {
      level: 'warn',
      code: 'SVD_UPSTREAM_UNAVAILABLE',
      reason: 'ECONNREFUSED',
      upstream: 'plain',
    })
  },
)

t.test(
  'a request target over maxHeaderBytes is 414 SVD_REQUEST_URI_TOO_LONG (RFC 9112 §3); a head too big by its fields stays 431',
  async (t) => {
    const edge = await startEdge(t, '{ maxHeaderBytes: 8192 }')
    const a = (n: number) => 'a'.repeat(n)
    const cases: [string, string[], number, string][] = [
      ['a 20 KB target', [`GET /${a(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`], 414, 'SVD_REQUEST_URI_TOO_LONG'],
      [
        'a 100 KB target',
        [`GET /${a(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
        414,
        'SVD_REQUEST_URI_TOO_LONG',
      ],
      [
        'a 10 KB absolute-form target sent in two writes',
        [`GET http://x/${a(5000)}`, `${a(5000)}?q=1 HTTP/1.1\r\nHost: x\r\n\r\n`],
        414,
        'SVD_REQUEST_URI_TOO_LONG',
      ],
      [
        'one 10 KB field',
        [`GET /f HTTP/1.1\r\nHost: x\r\nX-Big: ${a(10_000)}\r\n\r\n`],
        431,
        'SVD_REQUEST_HEADERS_TOO_LARGE',
      ],
      [
        'a 5 KB target and a 5 KB field',
        [`GET /${a(5000)} HTTP/1.1\r\nHost: x\r\nX-Big: ${a(5000)}\r\n\r\n`],
        431,
        'SVD_REQUEST_HEADERS_TOO_LARGE',
      ],
    ]
    for (const side of SIDES) {
      for (const [name, parts, status, code] of cases) {
        const before = edge.app.received.length
        const writes: (string | (() => Promise<void>))[] = []
        for (const p of parts) {
          if (writes.length > 0) writes.push(() => new Promise((r) => setTimeout(r, 50)))
          writes.push(p)
        }
        const r = await rawExchange(await edge.connect[side](), writes)
        t.equal(r.status, status, `${side}: ${name}: ${status}`)
        t.equal(r.code, code, `${side}: ${name}: code`)
        t.ok(r.closed, `${side}: ${name}: closed`)
        t.equal(edge.app.received.length, before, `${side}: ${name}: nothing reached the app`)
      }
      t.equal(await stillServing(edge, side), 200, `${side}: still serving`)
    }
    t.match(await edge.metrics('agent'), /code="SVD_REQUEST_URI_TOO_LONG"/, 'counted under its code')
  },
)
