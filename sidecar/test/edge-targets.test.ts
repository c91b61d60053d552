// Request targets and the methods the sidecar does not proxy, over raw sockets on the outbound (plaintext) and
// inbound (mTLS) listeners: each refusal has its status and code, nothing refused reaches the app, and what is
// forwarded reaches it in origin-form under the base path /api.
import t, { type Test } from 'tap'
import { checkRequest } from '../src/listener/http-guards.ts'
import { normalizeTarget, removeDotSegments } from '../src/listener/request-target.ts'
import { type Edge, rawExchange, startEdge, stillServing } from './helpers/edge.ts'

interface Case {
  name: string
  request: string
  status: number
  code?: string
  /** What the app must receive; undefined = nothing. */
  appUrl?: string
}

const UPGRADE =
  'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'

const CASES: Case[] = [
  {
    name: 'absolute-form whose Host names another authority',
    request: 'GET http://evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'absolute-form agreeing with Host (default port, case) becomes origin-form under the base path',
    request: 'GET http://X:80/admin?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    status: 200,
    appUrl: '/api/admin?q=1',
  },
  {
    name: 'absolute-form with only an authority becomes "/"',
    request: 'GET http://x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    status: 200,
    appUrl: '/api/',
  },
  {
    name: 'absolute-form with user information',
    request: 'GET http://u@x/ HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'dot-segments climbing out of the base path',
    request: 'GET /a/../../admin HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'percent-encoded dot-segments climbing out',
    request: 'GET /%2e%2E/admin HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'dot-segments that climb once %2f is read as "/"',
    request: 'GET /a/%2E%2e/..%2fadmin HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'absolute-form whose path climbs out',
    request: 'GET http://x/../admin HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'dot-segments inside the path are resolved; the query is left alone',
    request: 'GET /a/./b/../c?x=/../.. HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    status: 200,
    appUrl: '/api/a/c?x=/../..',
  },
  {
    name: 'asterisk-form',
    // Well-formed, so the connection could go on (upstream-responses.test.ts); the client ends it here.
    request: 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    status: 501,
    code: 'SVD_REQUEST_UNSUPPORTED',
  },
  {
    name: 'a fragment in the target',
    request: 'GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'a Host with a path in it',
    request: 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'a Host with an unclosed IPv6 literal',
    request: 'GET / HTTP/1.1\r\nHost: [::1\r\n\r\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'a WebSocket upgrade goes under the base path too (the app refuses it)',
    request: `GET /ws HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`,
    status: 502,
    code: 'SVD_UPSTREAM_PROTOCOL',
    appUrl: '/api/ws',
  },
  {
    name: 'a WebSocket upgrade whose path climbs out',
    request: `GET /a/../../ws HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`,
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'a bare LF line ending (refused by Node’s parser)',
    request: 'GET / HTTP/1.1\nHost: x\n\n',
    status: 400,
    code: 'SVD_REQUEST_INVALID',
  },
  {
    name: 'a head over maxHeaderBytes (refused by Node’s parser)',
    request: `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    status: 431,
    code: 'SVD_REQUEST_HEADERS_TOO_LARGE',
  },
  {
    name: 'CONNECT (Node would close without a word)',
    request: 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n',
    status: 501,
    code: 'SVD_REQUEST_UNSUPPORTED',
  },
  {
    name: 'Expect other than 100-continue (Node would answer a plain 417)',
    request: 'POST /x HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: 2\r\n\r\nhi',
    status: 417,
    code: 'SVD_REQUEST_EXPECTATION_FAILED',
  },
]

async function runCases(t: Test, edge: Edge, side: 'outbound' | 'inbound') {
  for (const c of CASES) {
    const before = edge.app.received.length
    const socket = await edge.connect[side]()
    const r = await rawExchange(socket, [c.request])
    t.equal(r.status, c.status, `${side}: ${c.name}: status`)
    t.equal(r.code, c.code, `${side}: ${c.name}: code`)
    t.ok(r.closed, `${side}: ${c.name}: connection closed`)
    const got = edge.app.received.slice(before).map((x) => x.url)
    t.same(got, c.appUrl === undefined ? [] : [c.appUrl], `${side}: ${c.name}: what the app received`)
  }
  t.equal(await stillServing(edge, side), 200, `${side}: still serving`)
}

t.test('request targets and unproxied methods, outbound and inbound', async (t) => {
  const edge = await startEdge(t)
  await runCases(t, edge, 'outbound')
  await runCases(t, edge, 'inbound')
  const agent = await edge.metrics('agent')
  t.match(
    agent,
    /svidecar_connections_refused_total\{listener="egress",direction="outbound",code="SVD_REQUEST_UNSUPPORTED"\} 1/,
  )
  t.match(
    agent,
    /svidecar_requests_total\{listener="egress",direction="outbound",status_class="4xx",code="SVD_REQUEST_INVALID"\} \d+/,
  )
  for (const code of ['SVD_REQUEST_INVALID', 'SVD_REQUEST_HEADERS_TOO_LARGE']) {
    t.match(
      agent,
      new RegExp(
        `svidecar_connections_refused_total\\{listener="egress",direction="outbound",code="${code}"\\} 1`,
      ),
      `parser-level ${code} is counted`,
    )
  }
  const server = await edge.metrics('server')
  t.match(
    server,
    /svidecar_connections_refused_total\{listener="public",direction="inbound",code="SVD_REQUEST_EXPECTATION_FAILED"\} 1/,
  )
  t.ok(
    edge.logs.some((l) => l.msg === 'connection refused' && l.code === 'SVD_REQUEST_UNSUPPORTED'),
    'the CONNECT refusal is logged',
  )
  t.ok(
    edge.logs.some((l) => l.msg === 'request refused' && l.reason === 'HOST_MISMATCH'),
    'the Host mismatch is logged with its reason',
  )
})

t.test('the absolute-form authority becomes Host when an HTTP/1.0 client sent none', async (t) => {
  const edge = await startEdge(t)
  const r = await rawExchange(await edge.connect.outbound(), ['GET http://mesh/p HTTP/1.0\r\n\r\n'])
  t.equal(r.status, 200, 'routed by the authority (Host "mesh" goes through the server sidecar)')
  const got = edge.app.received.at(-1)
  t.equal(got?.url, '/api/p')
  const hostAt = got?.rawHeaders.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === 'host') ?? -1
  t.equal(got?.rawHeaders[hostAt + 1], 'mesh', 'the app sees the authority as Host')
  t.ok(
    got?.rawHeaders.some((h) => h.toLowerCase() === 'x-spiffe-id'),
    'and it came through the inbound sidecar',
  )
})

t.test('dot-segment removal (RFC 3986 §5.2.4) and target rewriting', async (t) => {
  t.equal(removeDotSegments('/a/b/c/./../../g'), '/a/g')
  t.equal(removeDotSegments('/a/b/.'), '/a/b/')
  t.equal(removeDotSegments('/a/b/..'), '/a/')
  t.equal(removeDotSegments('/a/%2E/b'), '/a/b')
  t.equal(removeDotSegments('/a/.../b'), '/a/.../b', 'three dots are a name')
  t.equal(removeDotSegments('/a/..x/b'), '/a/..x/b')
  t.equal(removeDotSegments('/..'), undefined)
  t.equal(removeDotSegments('/a/../..'), undefined)
  const target = (url: string, host?: string) => {
    const req = {
      url,
      headers: host === undefined ? {} : { host },
      rawHeaders: host === undefined ? [] : ['Host', host],
    }
    const err = normalizeTarget(req as never)
    return err === undefined ? req.url : err.reason
  }
  t.equal(target('http://[::1]:8080/x', '[::1]:8080'), '/x')
  t.equal(target('https://x:443/x', 'x'), '/x')
  t.equal(target('https://x:80/x', 'x'), 'HOST_MISMATCH', 'port 80 is not https’s default')
  t.equal(target('http://x?q', 'x'), '/?q')
  t.equal(target('ws://x/', 'x'), 'BAD_TARGET_SCHEME')
  t.equal(target('x/y', 'x'), 'BAD_TARGET')
  t.equal(target('http:///y', ''), 'BAD_TARGET_AUTHORITY')
  t.equal(target('/a\\..\\..\\b', 'x'), 'PATH_ESCAPES_ROOT', 'backslashes read as slashes by some servers')
  // RFC 3986 §6.2.2.2: an escaped unreserved character is that character. The route table and the lenses match
  // the path as text, and an app that decodes it would otherwise read another path than they did.
  t.equal(target('/%6Dcp/%7Euser/x%2dy', 'x'), '/mcp/~user/x-y')
  t.equal(
    target('/a%2Fb/%25/%20/%zz/%4', 'x'),
    '/a%2Fb/%25/%20/%zz/%4',
    'reserved, other and malformed escapes stay',
  )
  t.equal(target('/v%31/x?q=%61', 'x'), '/v1/x?q=%61', 'the query is not the path')
  t.equal(target('/a/.%2e/%62', 'x'), '/b')
})

t.test('guards: what the header count skips, Host syntax, a declared body over the limit', async (t) => {
  const check = (rawHeaders: string[], maxBodyBytes = 0) =>
    checkRequest({ rawHeaders }, { maxHeaderCount: 3, maxBodyBytes, inbound: false })
  const fields = (n: number) => Array.from({ length: n }, (_, i) => [`X-${i}`, 'v']).flat()
  const hop = ['Connection', 'keep-alive', 'TE', 'trailers', 'Keep-Alive', 'timeout=5']
  t.equal(check(['Host', 'a', ...fields(3), ...hop, 'Content-Length', '0']), undefined)
  t.match(check(['Host', 'a', ...fields(4)]), { code: 'SVD_REQUEST_HEADERS_TOO_LARGE' })
  t.match(
    check(['Host', 'a', ...fields(1), ...Array.from({ length: 17 }, () => ['Connection', 'x']).flat()]),
    { code: 'SVD_REQUEST_HEADERS_TOO_LARGE' },
    'uncounted fields are bounded too',
  )
  for (const good of [
    'a',
    'a.example:8080',
    '127.0.0.1:1',
    '[::1]:80',
    '[fe80::1%25eth0]'.replace('%25eth0', ''),
    '',
  ])
    t.equal(check(['Host', good]), undefined, `Host "${good}"`)
  for (const bad of ['a b', 'a/b', 'a@b', '[::1', 'a:8x', 'a?b'])
    t.match(check(['Host', bad]), { reason: 'BAD_HOST' }, `Host "${bad}"`)
  t.match(check(['Host', 'a', 'Content-Length', '11'], 10), {
    code: 'SVD_REQUEST_BODY_TOO_LARGE',
    reason: 'CONTENT_LENGTH_OVER_LIMIT',
  })
  t.equal(check(['Host', 'a', 'Content-Length', '10'], 10), undefined)
  t.equal(check(['Host', 'a', 'Content-Length', '99999999'], 0), undefined, '0 = no limit')
})
