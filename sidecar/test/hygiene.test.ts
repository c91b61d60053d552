// Request hygiene at the outbound listener, over raw sockets: ambiguous
// requests get 400 before a byte goes upstream, oversized heads get 431,
// slow clients are cut within seconds, hop-by-hop headers stay on their hop.
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import t from 'tap'
import { forwardHeaders, responseHeaders } from '../src/forwarder/headers.ts'
import { checkRequest } from '../src/listener/http-guards.ts'
import { startMesh } from './helpers/mesh.ts'

function rawExchange(port: number, request: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1', () => socket.write(request))
    let data = ''
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => {
      data += d
    })
    socket.on('close', () => resolve(data))
    socket.on('error', () => resolve(data))
    setTimeout(() => {
      socket.destroy()
      reject(new Error(`no close within ${timeoutMs} ms; got: ${data.slice(0, 200)}`))
    }, timeoutMs).unref()
  })
}

t.test('ambiguous requests are refused with 400 before anything reaches the app', async (t) => {
  const mesh = await startMesh(t, {
    agentYaml: 'limits: { maxHeaderCount: 20, maxHeaderBytes: 4096, headersTimeout: 1s }',
  })
  const port = Number(new URL(mesh.outboundUrl).port)
  const seen = mesh.app.seen.length
  const cases: [string, string, RegExp][] = [
    [
      'Content-Length with Transfer-Encoding',
      'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      /^HTTP\/1\.1 400/,
    ],
    [
      'two Content-Length',
      'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx',
      /^HTTP\/1\.1 400/,
    ],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', /^HTTP\/1\.1 400/],
    ['no Host', 'GET / HTTP/1.1\r\n\r\n', /^HTTP\/1\.1 400/],
    [
      'Transfer-Encoding other than chunked',
      'POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
      /^HTTP\/1\.1 400/,
    ],
    ['a bare LF line ending', 'GET / HTTP/1.1\nHost: a\n\n', /^HTTP\/1\.1 400/],
    [
      'too many header fields',
      `GET / HTTP/1.1\r\nHost: a\r\n${'X-A: 1\r\n'.repeat(25)}\r\n`,
      /^HTTP\/1\.1 431/,
    ],
    [
      'a head over the size limit',
      `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`,
      /^HTTP\/1\.1 431/,
    ],
  ]
  for (const [name, request, expected] of cases) {
    const response = await rawExchange(port, request)
    t.match(response, expected, name)
    t.match(response, /x-svidecar-error: SVD_REQUEST_/i, `${name}: marked as the proxy's answer`)
  }
  t.equal(mesh.app.seen.length, seen, 'no refused request reached the app')
})

t.test('a slowloris client is cut within seconds, not after Node’s default 30 s check', async (t) => {
  const mesh = await startMesh(t, { agentYaml: 'limits: { headersTimeout: 1s }' })
  const port = Number(new URL(mesh.outboundUrl).port)
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('GET / HTTP/1.1\r\nHost: a\r\n')
  const drip = setInterval(() => socket.write('X-Drip: 1\r\n'), 200)
  const started = Date.now()
  let response = ''
  socket.setEncoding('latin1')
  socket.on('data', (d: string) => {
    response += d
  })
  socket.on('error', () => {})
  await once(socket, 'close')
  clearInterval(drip)
  const tookMs = Date.now() - started
  t.ok(tookMs < 5000, `cut after ${tookMs} ms`)
  t.match(response, /^HTTP\/1\.1 408/, 'told why')
})

t.test(
  'hop-by-hop headers do not cross; Connection-named fields are dropped; order and repeats are kept',
  async (t) => {
    const raw = [
      'Host',
      'a',
      'Connection',
      'keep-alive, X-Secret-Hop',
      'X-Secret-Hop',
      'x',
      'Keep-Alive',
      'timeout=5',
      'Proxy-Authorization',
      'Basic Zm9vOmJhcg==',
      'TE',
      'trailers',
      'Upgrade',
      'h2c',
      'X-Spiffe-Id',
      'spiffe://forged/x',
      'Accept',
      'a',
      'Accept',
      'b',
    ]
    t.same(
      forwardHeaders(raw, {
        strip: new Set(['x-spiffe-id']),
        set: { 'x-spiffe-id': 'spiffe://real/y' },
        isUpgrade: false,
      }),
      ['Host', 'a', 'Accept', 'a', 'Accept', 'b', 'x-spiffe-id', 'spiffe://real/y'],
    )
    t.same(
      responseHeaders([
        'Content-Type',
        'text/plain',
        'Transfer-Encoding',
        'chunked',
        'Connection',
        'close',
        'Set-Cookie',
        'a',
        'Set-Cookie',
        'b',
      ]),
      ['Content-Type', 'text/plain', 'Set-Cookie', 'a', 'Set-Cookie', 'b'],
    )
  },
)

t.test('field names compare case-insensitively however many spellings a client invents', async (t) => {
  // forwarder/headers.ts keeps a bounded cache of lower-cased names: past its size it starts over, and long
  // names bypass it; every answer must stay right either way.
  let wrong = 0
  for (let i = 0; i < 2000; i++) {
    const name = `X-Hop-${i}-Name`
    const out = forwardHeaders(['Connection', name.toUpperCase(), name, 'v', 'X-Keep', `${i}`], {
      strip: new Set(),
      isUpgrade: false,
    })
    if (out.length !== 2 || out[0] !== 'X-Keep' || out[1] !== `${i}`) wrong++
  }
  t.equal(wrong, 0, 'every Connection-named field dropped, across more spellings than the cache holds')
  const long = `X-${'Ab'.repeat(60)}`
  t.same(
    forwardHeaders([long, 'v', 'Accept', 'a'], { strip: new Set([long.toLowerCase()]), isUpgrade: false }),
    ['Accept', 'a'],
    'a long name the cache does not keep is still matched',
  )
})

t.test('request guards on raw header lists (independent of Node’s parser)', async (t) => {
  const check = (rawHeaders: string[], inbound = false) =>
    checkRequest({ rawHeaders }, { maxHeaderCount: 10, inbound })
  t.equal(check(['Host', 'a', 'Content-Length', '5']), undefined)
  t.match(check(['Accept', '*/*']), { reason: 'MISSING_HOST' })
  t.match(check(['Host', 'a', 'Content-Length', '5', 'Transfer-Encoding', 'chunked']), {
    code: 'SVD_REQUEST_INVALID',
    reason: 'CONTENT_LENGTH_WITH_TRANSFER_ENCODING',
  })
  t.match(check(['Host', 'a', 'content-length', '5', 'Content-Length', '5']), {
    reason: 'DUPLICATE_CONTENT_LENGTH',
  })
  t.match(check(['Host', 'a', 'Content-Length', '+5']), { reason: 'BAD_CONTENT_LENGTH' })
  t.match(check(['Host', 'a', 'Transfer-Encoding', 'identity']), { reason: 'BAD_TRANSFER_ENCODING' })
  t.match(check(['Host', 'a', 'host', 'b']), { reason: 'DUPLICATE_HOST' })
  t.match(check(['Host', 'a', 'Authorization', 'x', 'Authorization', 'y']), {
    reason: 'DUPLICATE_AUTHORIZATION',
  })
  t.match(check(['Host', 'a', 'Bad Name', 'x']), { reason: 'BAD_HEADER_NAME' })
  t.match(check(['Host', 'a', 'X_Spiffe_Id', 'x'], true), { reason: 'UNDERSCORE_IN_HEADER_NAME' })
  t.equal(
    check(['Host', 'a', 'X_Spiffe_Id', 'x'], false),
    undefined,
    'outbound (the local app) may use underscores',
  )
  t.match(check(Array.from({ length: 22 }, (_, i) => (i % 2 ? 'v' : `X-${i}`))), {
    code: 'SVD_REQUEST_HEADERS_TOO_LARGE',
  })
})

t.test('the admin port answers /healthz, /readyz and /metrics; nothing else', async (t) => {
  const mesh = await startMesh(t)
  const { host, port } = mesh.agentSidecar.addresses.admin
  const base = `http://${host}:${port}`
  t.equal(host, '127.0.0.1', 'loopback by default')
  t.equal((await fetch(`${base}/healthz`)).status, 200)
  t.equal((await fetch(`${base}/readyz`)).status, 200)
  await (await fetch(`${mesh.outboundUrl}/x`)).text()
  const metrics = await (await fetch(`${base}/metrics`)).text()
  t.match(metrics, /svidecar_ready 1/)
  t.match(
    metrics,
    /svidecar_requests_total\{listener="egress",direction="outbound",status_class="2xx",code=""\} \d+/,
  )
  t.match(metrics, /svidecar_tls_handshakes_total\{listener="mcp",direction="outbound",resumed="false"\} \d+/)
  t.notMatch(metrics, /spiffe:\/\//, 'no SPIFFE ID in any label')
  // Both sidecars share this process and its event channels; each admin port shows its own series only.
  t.notMatch(metrics, /listener="public"/, 'no series of the other sidecar’s inbound listener')
  const server = mesh.serverSidecar.addresses.admin
  const serverMetrics = await (await fetch(`http://${server.host}:${server.port}/metrics`)).text()
  t.match(
    serverMetrics,
    /svidecar_requests_total\{listener="public",direction="inbound",status_class="2xx",code=""\} 1\n/,
  )
  t.notMatch(serverMetrics, /direction="outbound"/, 'the server sidecar has no outbound traffic of its own')
  t.match(serverMetrics, /svidecar_ready 1/)
  t.equal((await fetch(`${base}/debug`)).status, 404)
  t.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405)
})
