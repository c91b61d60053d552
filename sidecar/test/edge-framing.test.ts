// HTTP/1.1 framing at both listeners, over raw sockets (RFC 9112 §2, §3, §5, §6, §7; security.md §2): what a
// second parser could read differently never reaches the app; no field a client writes can pass for an identity
// the sidecar vouches for (security.md §7.2, §7.4).
import { execFile } from 'node:child_process'
import t, { type Test } from 'tap'
import { type Edge, rawExchange, startEdge, stillServing } from './helpers/edge.ts'
import { AGENT } from './helpers/mesh.ts'

const SIDES = ['outbound', 'inbound'] as const

interface Case {
  name: string
  request: string
  status: number
  code?: string
}

const REFUSED: Case[] = [
  {
    name: 'obs-fold (RFC 9112 §5.2)',
    request: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'a bare CR inside a field value (RFC 9112 §2.2)',
    request: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\rX-B: 2\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'a NUL inside a field value (RFC 9110 §5.5)',
    request: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\x002\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'a comma-listed Content-Length (RFC 9112 §6.3)',
    request: 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nx',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'two Transfer-Encoding fields',
    request:
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: faulty framing)',
    request: 'POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'whitespace between the request line and the first field (RFC 9112 §2.2)',
    request: 'GET / HTTP/1.1\r\n Host: x\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'authority-form for a method other than CONNECT (RFC 9112 §3.2.3)',
    request: 'GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'a textual HTTP/2.0 request line (RFC 9112 §2.3; HTTP/2 has none)',
    request: 'GET / HTTP/2.0\r\nHost: x\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'absolute-form without Host in HTTP/1.1 (RFC 9112 §3.2)',
    request: 'GET http://x/ HTTP/1.1\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    // A TRACE echo would hand the client every field the sidecar added: a verified identity, a provider's key.
    name: 'TRACE (RFC 9110 §9.3.8)',
    request: 'TRACE /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    status: 501,
    code: 'SVD_REQUEST_UNSUPPORTED',
  },
  // security.md §2: Node keeps the first Content-Type and joins the MCP fields; the app's parser may pick the other.
  ...['Content-Type', 'Mcp-Session-Id', 'MCP-Protocol-Version', 'Mcp-Method', 'Mcp-Name'].map((name) => ({
    name: `two ${name} fields`,
    request: `POST / HTTP/1.1\r\nHost: x\r\n${name}: a\r\n${name.toLowerCase()}: b\r\nContent-Length: 2\r\n\r\n{}`,
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  })),
]

async function refusedCases(t: Test, edge: Edge, side: (typeof SIDES)[number]): Promise<void> {
  for (const c of REFUSED) {
    const before = edge.app.received.length
    const r = await rawExchange(await edge.connect[side](), [c.request])
    t.equal(r.status, c.status, `${side}: ${c.name}: status`)
    t.equal(r.code, c.code, `${side}: ${c.name}: code`)
    t.ok(r.closed, `${side}: ${c.name}: connection closed`)
    t.notMatch(r.text, /stack|at [A-Za-z]+ \(|node:internal/, `${side}: ${c.name}: no internal detail`)
    t.equal(edge.app.received.length, before, `${side}: ${c.name}: nothing reached the app`)
  }
  t.equal(await stillServing(edge, side), 200, `${side}: still serving`)
}

t.test('framing the app could read differently is refused at both listeners', async (t) => {
  const edge = await startEdge(t)
  for (const side of SIDES) await refusedCases(t, edge, side)
})

t.test(
  'chunked bodies: extensions are dropped, a broken chunk never reaches the app as a whole body',
  async (t) => {
    const edge = await startEdge(t)
    for (const side of SIDES) {
      const ok = await rawExchange(await edge.connect[side](), [
        'POST /ext HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
          '5;name=value\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n',
      ])
      t.equal(ok.status, 200, `${side}: a chunk extension and a trailer are valid`)
      t.match(ok.text, /"bytes":5/, `${side}: the app got the five body bytes`)
      // Chunk framing other parsers read leniently (RFC 9112 §7.1): a smuggled request could hide in any of them.
      for (const [name, chunks] of [
        ['a chunk size that is not hex', '5\r\nhello\r\nzz\r\n\r\n'],
        ['whitespace after the chunk size', '5 \r\nhello\r\n0\r\n\r\n'],
        ['a 0x prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
        ['a bare LF after chunk data', '5\r\nhello\n0\r\n\r\n'],
        ['a bare CR in a chunk extension', '5;a\rb\r\nhello\r\n0\r\n\r\n'],
        ['a chunk size over 64 bits', 'ffffffffffffffffff\r\nhello\r\n0\r\n\r\n'],
        ['a bare LF after the last chunk', '5\r\nhello\r\n0\n\n'],
      ]) {
        const before = edge.app.received.length
        const bad = await rawExchange(await edge.connect[side](), [
          `POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`,
        ])
        t.ok(bad.closed, `${side}: ${name}: the connection is closed`)
        t.notMatch(bad.text, /^HTTP\/1\.1 2/, `${side}: ${name}: not answered as a success`)
        for (const got of edge.app.received.slice(before))
          t.notOk(got.complete, `${side}: ${name}: the app never saw a complete body`)
      }
    }
  },
)

// Everything a client could write to claim an identity or a hop it did not make (security.md §7.2, §7.4).
const FORGED: [string, string][] = [
  ['X-Spiffe-Id', 'spiffe://evil.example/x'],
  ['x-forwarded-client-cert', 'By=spiffe://evil.example/x;URI=spiffe://evil.example/y'],
  ['Client-Cert', ':MIIBforged=:'],
  ['Client-Cert-Chain', ':MIIBforged=:'],
  ['X-Client-Cert', 'forged'],
  ['SSL-Client-Cert', 'forged'],
  ['X-SSL-Client-Cert', 'forged'],
  ['X-Svidecar-Peer', 'spiffe://evil.example/x'],
  ['Forwarded', 'for=10.0.0.1;by=spiffe'],
  ['X-Forwarded-For', '10.0.0.1'],
  ['X-Forwarded-Proto', 'https'],
  ['X-Forwarded-Host', 'admin.internal'],
]

function names(raw: readonly string[]): string[] {
  return raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
}

t.test('identity and forwarding headers a client wrote never reach the app', async (t) => {
  const edge = await startEdge(t)
  const forged = FORGED.map(([n, v]) => `${n}: ${v}\r\n`).join('')
  for (const [side, host] of [
    ['outbound', 'x'],
    ['inbound', 'x'],
    ['outbound', 'mesh'],
  ] as const) {
    const before = edge.app.received.length
    const r = await rawExchange(await edge.connect[side](), [
      `GET /who HTTP/1.1\r\nHost: ${host}\r\n${forged}Trailer: X-T\r\nConnection: close\r\n\r\n`,
    ])
    t.equal(r.status, 200, `${side} ${host}: served`)
    const got = edge.app.received[before]
    const seen = names(got?.rawHeaders ?? [])
    for (const [name] of FORGED) {
      if (name === 'X-Spiffe-Id' && (side === 'inbound' || host === 'mesh')) continue
      t.notOk(seen.includes(name.toLowerCase()), `${side} ${host}: ${name} does not reach the app`)
    }
    t.notOk(
      seen.includes('trailer'),
      `${side} ${host}: no Trailer announced (request trailers are not forwarded)`,
    )
    if (side === 'inbound' || host === 'mesh') {
      const ids = (got?.rawHeaders ?? []).filter(
        (_, i, a) => i % 2 === 1 && a[i - 1]?.toLowerCase() === 'x-spiffe-id',
      )
      t.same(ids, [AGENT], `${side} ${host}: only the verified peer ID`)
    }
  }
})

const WS_HEADERS =
  'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'

t.test(
  'Upgrade: h2c and non-GET upgrades are ignored (RFC 9110 §7.8); a WebSocket handshake with a body is refused',
  async (t) => {
    const edge = await startEdge(t)
    for (const side of SIDES) {
      // What `curl --http2 http://…` sends: the server may keep HTTP/1.1 and answer as usual.
      let before = edge.app.received.length
      const h2c = await rawExchange(await edge.connect[side](), [
        'GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n' +
          'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
        async (got) => {
          const end = Date.now() + 10_000
          while (!/\r\n\r\n\{"url"/.test(got()) && Date.now() < end)
            await new Promise((r) => setTimeout(r, 20))
        },
        'GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      ])
      t.equal(h2c.status, 200, `${side}: an h2c upgrade offer is answered in HTTP/1.1`)
      t.notMatch(h2c.text, /101 Switching/, `${side}: no switch`)
      t.match(h2c.text, /"url":"\/api\/after"/, `${side}: the connection stays HTTP/1.1`)
      const offered = names(edge.app.received[before]?.rawHeaders ?? [])
      for (const n of ['upgrade', 'http2-settings'])
        t.notOk(offered.includes(n), `${side}: ${n} stays on its hop (listed in Connection)`)
      before = edge.app.received.length
      const post = await rawExchange(await edge.connect[side](), [
        `POST /ws HTTP/1.1\r\nHost: x\r\n${WS_HEADERS}Content-Length: 5\r\n\r\nhello`,
      ])
      t.equal(
        post.status,
        200,
        `${side}: a POST offering WebSocket is an ordinary POST (RFC 6455 §4.1: GET only)`,
      )
      t.match(post.text, /"bytes":5/, `${side}: its body reached the app as a body`)
      t.equal(edge.app.received[before]?.method, 'POST')
      before = edge.app.received.length
      const withBody = await rawExchange(await edge.connect[side](), [
        `GET /ws HTTP/1.1\r\nHost: x\r\n${WS_HEADERS}Content-Length: 5\r\n\r\nhello`,
      ])
      t.equal(withBody.status, 400, `${side}: a WebSocket handshake with a body: body or frames?`)
      t.equal(withBody.code, 'SVD_REQUEST_INVALID', `${side}: code`)
      t.equal(edge.app.received.length, before, `${side}: nothing reached the app`)
    }
  },
)

t.test(
  'outbound, identity names spelt with underscores are dropped too (some servers read "_" as "-")',
  async (t) => {
    const edge = await startEdge(t)
    for (const host of ['x', 'mesh']) {
      const before = edge.app.received.length
      const r = await rawExchange(await edge.connect.outbound(), [
        `GET /u HTTP/1.1\r\nHost: ${host}\r\nX_Spiffe_Id: spiffe://evil.example/x\r\nX_Forwarded_Client_Cert: forged\r\n` +
          `Client_Cert: forged\r\nX_Svidecar_Peer: forged\r\n${host === 'x' ? 'X_Keep: 1\r\n' : ''}Connection: close\r\n\r\n`,
      ])
      t.equal(
        r.status,
        200,
        `${host}: served (the peer's inbound listener would refuse them; the outbound one drops them first)`,
      )
      const seen = names(edge.app.received[before]?.rawHeaders ?? [])
      for (const n of ['x_spiffe_id', 'x_forwarded_client_cert', 'client_cert', 'x_svidecar_peer'])
        t.notOk(seen.includes(n), `${host}: ${n} does not reach the app`)
      if (host === 'x') t.ok(seen.includes('x_keep'), `${host}: other underscore names pass`)
    }
  },
)

t.test(
  'curl --http2 on a plain http:// URL (an h2c upgrade offer) gets its answer over HTTP/1.1',
  async (t) => {
    const edge = await startEdge(t)
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        'curl',
        [
          '-sS',
          '--http2',
          '-o',
          '-',
          '-w',
          '\n%{http_code} %{http_version}',
          `http://127.0.0.1:${edge.outboundPort}/h2c`,
        ],
        (err, stdout, stderr) => (err ? reject(Object.assign(err, { stderr })) : resolve(stdout)),
      ),
    )
    t.match(out, /"url":"\/api\/h2c"/, 'the app answered')
    t.match(out, /\n200 1\.1$/, 'status 200, HTTP/1.1 kept')
  },
)

t.test(
  'Max-Forwards on OPTIONS: decremented when forwarded, answered by the sidecar at 0 (RFC 9110 §7.6.2)',
  async (t) => {
    const edge = await startEdge(t)
    for (const side of SIDES) {
      let before = edge.app.received.length
      const zero = await rawExchange(await edge.connect[side](), [
        'OPTIONS /x HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n',
      ])
      t.equal(zero.status, 200, `${side}: 0: the sidecar is the final recipient`)
      t.match(zero.text, /\r\nallow: [A-Z, ]*OPTIONS/i, `${side}: 0: with Allow`)
      t.equal(edge.app.received.length, before, `${side}: 0: not forwarded`)
      before = edge.app.received.length
      const two = await rawExchange(await edge.connect[side](), [
        'OPTIONS /x HTTP/1.1\r\nHost: x\r\nMax-Forwards: 2\r\nConnection: close\r\n\r\n',
      ])
      t.equal(two.status, 200, `${side}: 2: forwarded`)
      const raw = edge.app.received[before]?.rawHeaders ?? []
      const values = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]?.toLowerCase() === 'max-forwards')
      t.same(values, ['1'], `${side}: 2: the app sees 1`)
      const bad = await rawExchange(await edge.connect[side](), [
        'OPTIONS /x HTTP/1.1\r\nHost: x\r\nMax-Forwards: -1\r\n\r\n',
      ])
      t.equal(bad.status, 400, `${side}: a Max-Forwards that is not a number: 400`)
      t.equal(bad.code, 'SVD_REQUEST_INVALID', `${side}: code`)
    }
    // Through both sidecars: the agent's outbound listener decrements 1 to 0, so the server sidecar answers.
    const before = edge.app.received.length
    const chained = await rawExchange(await edge.connect.outbound(), [
      'OPTIONS /x HTTP/1.1\r\nHost: mesh\r\nMax-Forwards: 1\r\nConnection: close\r\n\r\n',
    ])
    t.equal(chained.status, 200, 'chained: answered')
    t.equal(edge.app.received.length, before, 'chained: the second sidecar answered, the app saw nothing')
  },
)

t.test(
  'an Upgrade offer in an HTTP/1.0 request is ignored (RFC 9110 §7.8; RFC 6455 §4.1 needs HTTP/1.1): a plain GET',
  async (t) => {
    const edge = await startEdge(t)
    for (const side of SIDES) {
      const before = edge.app.received.length
      const r = await rawExchange(await edge.connect[side](), [
        `GET /old HTTP/1.0\r\nHost: x\r\n${WS_HEADERS}\r\n`,
      ])
      t.equal(r.status, 200, `${side}: answered as the HTTP/1.0 GET it is`)
      t.notMatch(r.text, /101 Switching/, `${side}: no switch`)
      t.match(r.text, /"url":"\/api\/old"/, `${side}: the app answered`)
      t.equal(edge.app.received.length, before + 1, `${side}: one request reached the app`)
      const seen = names(edge.app.received[before]?.rawHeaders ?? [])
      t.notOk(seen.includes('upgrade'), `${side}: no Upgrade reached the app`)
      const raw = edge.app.received[before]?.rawHeaders ?? []
      const connection = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]?.toLowerCase() === 'connection')
      t.notMatch(connection.join(','), /upgrade/i, `${side}: the app was offered no switch`)
    }
  },
)

t.test(
  'a method the sidecar cannot forward, or one spelt in another case (methods are case-sensitive), is 501 (RFC 9110 §9.1, §15.6.2)',
  async (t) => {
    const edge = await startEdge(t)
    for (const side of SIDES) {
      for (const method of ['get', 'Get', 'post', 'FOO']) {
        const before = edge.app.received.length
        const r = await rawExchange(await edge.connect[side](), [
          `${method} /m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        ])
        t.equal(r.status, 501, `${side} ${method}: 501`)
        t.equal(r.code, 'SVD_REQUEST_UNSUPPORTED', `${side} ${method}: code`)
        t.match(r.text, /case-sensitive/, `${side} ${method}: the message says why`)
        t.ok(r.closed, `${side} ${method}: closed`)
        t.equal(edge.app.received.length, before, `${side} ${method}: nothing reached the app`)
      }
      // Bytes that are no request line at all (a TLS ClientHello on the plaintext port) stay a plain 400.
      const garbage = await rawExchange(await edge.connect[side](), [
        Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
      ])
      t.equal(garbage.status, 400, `${side}: not HTTP: 400`)
      t.equal(garbage.code, 'SVD_REQUEST_INVALID', `${side}: not HTTP: code`)
      t.equal(await stillServing(edge, side), 200, `${side}: still serving`)
    }
  },
)

t.test(
  'Via (RFC 9110 §7.6.3): each sidecar appends itself to the request and the response it forwards',
  async (t) => {
    const edge = await startEdge(t)
    const values = (raw: readonly string[]) =>
      raw.filter((_, i) => i % 2 === 1 && raw[i - 1]?.toLowerCase() === 'via')
    const responseVia = (text: string) =>
      [...(text.split('\r\n\r\n')[0] ?? '').matchAll(/\r\nvia: ([^\r]*)/gi)].map((m) => m[1])
    for (const [side, host, version, sent, app, back] of [
      [
        'outbound',
        'x',
        '1.1',
        'Via: 1.1 client-proxy\r\n',
        ['1.1 client-proxy', '1.1 svidecar'],
        ['1.1 svidecar'],
      ],
      ['outbound', 'x', '1.0', '', ['1.0 svidecar'], ['1.1 svidecar']],
      ['inbound', 'x', '1.1', '', ['1.1 svidecar'], ['1.1 svidecar']],
      ['outbound', 'mesh', '1.1', '', ['1.1 svidecar', '1.1 svidecar'], ['1.1 svidecar', '1.1 svidecar']],
    ] as const) {
      const before = edge.app.received.length
      const r = await rawExchange(await edge.connect[side](), [
        `GET /via HTTP/${version}\r\nHost: ${host}\r\n${sent}Connection: close\r\n\r\n`,
      ])
      t.equal(r.status, 200, `${side} ${host} ${version}: served`)
      t.same(
        values(edge.app.received[before]?.rawHeaders ?? []),
        app,
        `${side} ${host} ${version}: at the app`,
      )
      t.same(responseVia(r.text), back, `${side} ${host} ${version}: at the client`)
    }
    // The sidecar's own answers are not forwarded messages.
    const refused = await rawExchange(await edge.connect.outbound(), [
      'GET /../x HTTP/1.1\r\nHost: x\r\n\r\n',
    ])
    t.equal(refused.status, 400)
    t.same(responseVia(refused.text), [], 'a refusal carries no Via')
  },
)

t.test(
  'pipelined requests after one with Connection: close are ignored; those before it are answered in order (RFC 9112 §9.6)',
  async (t) => {
    const edge = await startEdge(t)
    for (const side of SIDES) {
      const before = edge.app.received.length
      const r = await rawExchange(await edge.connect[side](), [
        'GET /a HTTP/1.1\r\nHost: x\r\n\r\n' +
          'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc' +
          'GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' +
          'GET /d HTTP/1.1\r\nHost: x\r\n\r\n',
      ])
      const statuses = [...r.text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1])
      t.same(statuses, ['200', '200', '200'], `${side}: three answers, all 200 (no 400 in front of them)`)
      t.same(
        [...r.text.matchAll(/"url":"([^"]*)"/g)].map((m) => m[1]),
        ['/api/a', '/api/b', '/api/c'],
        `${side}: in request order`,
      )
      t.ok(r.closed, `${side}: closed after the answer to the request that asked for it`)
      t.same(
        edge.app.received.slice(before).map((g) => g.url),
        ['/api/a', '/api/b', '/api/c'],
        `${side}: the request after the close never reached the app`,
      )
    }
  },
)

t.test(
  'a malformed request pipelined behind good ones is answered 400 after their answers, never in front of them (RFC 9112 §9.3.2)',
  async (t) => {
    const edge = await startEdge(t)
    for (const side of SIDES) {
      const before = edge.app.received.length
      const r = await rawExchange(await edge.connect[side](), [
        'GET /a HTTP/1.1\r\nHost: x\r\n\r\n' +
          'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc' +
          'POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      ])
      const statuses = [...r.text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1])
      t.same(statuses, ['200', '200', '400'], `${side}: the good answers first, then the refusal`)
      t.same(
        [...r.text.matchAll(/"url":"([^"]*)"/g)].map((m) => m[1]),
        ['/api/a', '/api/b'],
        `${side}: the answers in request order`,
      )
      t.match(r.text, /x-svidecar-error: SVD_REQUEST_INVALID/, `${side}: the refusal has its code`)
      t.ok(r.closed, `${side}: closed after the refusal`)
      t.same(
        edge.app.received.slice(before).map((g) => g.url),
        ['/api/a', '/api/b'],
        `${side}: the malformed request never reached the app`,
      )
    }
  },
)

t.test(
  'a malformed request on a kept-alive connection, after an answered one, gets its 400 too (not a silent close)',
  async (t) => {
    const edge = await startEdge(t)
    for (const side of SIDES) {
      const before = edge.app.received.length
      const r = await rawExchange(await edge.connect[side](), [
        'GET /a HTTP/1.1\r\nHost: x\r\n\r\n',
        async (got) => {
          const end = Date.now() + 10_000
          while (!/"url":"\/api\/a"/.test(got()) && Date.now() < end)
            await new Promise((r) => setTimeout(r, 20))
        },
        'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      ])
      const statuses = [...r.text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1])
      t.same(statuses, ['200', '400'], `${side}: the answer, then the refusal`)
      t.match(r.text, /x-svidecar-error: SVD_REQUEST_INVALID/, `${side}: with its code`)
      t.ok(r.closed, `${side}: closed`)
      t.equal(edge.app.received.length, before + 1, `${side}: only the first request reached the app`)
    }
  },
)
