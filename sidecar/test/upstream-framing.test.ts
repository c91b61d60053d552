// Response framing from an upstream that a client could read differently (RFC 9112 §6.3): duplicate or
// conflicting lengths, a body shorter than declared, bodies on HEAD/204/304, interim responses. A raw TCP app
// writes the exact bytes; raw clients read the exact bytes the sidecar relays, outbound and inbound.
import t from 'tap'
import { RawApp, type RawClient } from './helpers/raw-http.ts'
import { startRawMesh } from './helpers/raw-mesh.ts'

const ANSWERS = {
  'two-lengths': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 7\r\n\r\nokEXTRA',
  'listed-lengths': 'HTTP/1.1 200 OK\r\ncontent-length: 2, 7\r\n\r\nokEXTRA',
  'length-and-chunked':
    'HTTP/1.1 200 OK\r\ncontent-length: 20\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  'short-body': ['HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok', 'close'],
  'bad-chunk': ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n'],
  'no-content-with-body': 'HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n',
  'head-length': 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n',
  'not-modified': 'HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\netag: "a"\r\n\r\n',
  'early-hints':
    'HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  'early-hints-with-length':
    'HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\ncontent-length: 5\r\n\r\n' +
    'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  'hop-by-hop':
    'HTTP/1.1 200 OK\r\nconnection: x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nproxy-authenticate: Basic\r\n' +
    'content-length: 2\r\n\r\nok',
  // RFC 9112 §6.1, §7: undici takes the chunks off; the gzip coding under them would be relayed unannounced.
  'gzip-chunked': 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  'chunked-twice':
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  // undici's head limit (http.maxHeaderSize, 16 KiB of names and values): no unbounded head reaches a client.
  'huge-head': `HTTP/1.1 200 OK\r\n${'x-a: 1\r\n'.repeat(10_000)}content-length: 2\r\n\r\nok`,
  trailers:
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n2\r\nok\r\n0\r\n' +
    'x-sum: 1\r\nx-svidecar-error: SVD_POLICY_DENIED\r\nkeep-alive: timeout=5\r\n\r\n',
} as const

/** Sends one request with Connection: close and returns every byte the sidecar wrote before closing. */
async function exchange(client: RawClient, request: string): Promise<string> {
  client.send(request)
  await client.waitClosed()
  return client.pending
}

t.test('upstream framing a client could read differently is never relayed as it came', async (t) => {
  const app = await RawApp.start(t, ANSWERS)
  const edge = await startRawMesh(t, app.port)
  for (const [side, open, host] of [
    ['outbound', edge.outboundClient, 'raw.test'],
    ['inbound', edge.inboundClient, 'mcp.test'],
  ] as const) {
    const get = async (name: string, method = 'GET') =>
      exchange(await open(), `${method} /case/${name} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
    for (const name of [
      'two-lengths',
      'listed-lengths',
      'length-and-chunked',
      'huge-head',
      'gzip-chunked',
      'chunked-twice',
    ]) {
      const text = await get(name)
      t.match(text, /^HTTP\/1\.1 502 /, `${side} ${name}: 502`)
      t.match(text, /\r\nx-svidecar-error: SVD_UPSTREAM_PROTOCOL\r\n/, `${side} ${name}: code`)
      t.notMatch(text, /EXTRA|^ok/m, `${side} ${name}: no upstream body bytes`)
    }
    for (const name of ['short-body', 'bad-chunk']) {
      const text = await get(name)
      // Either refused before the head or cut after it: never a complete-looking message.
      const head = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]
      if (head === '502') t.pass(`${side} ${name}: refused`)
      else {
        const chunked = /\r\ntransfer-encoding: chunked\r\n/i.test(text)
        const declared = /\r\ncontent-length: (\d+)\r\n/i.exec(text)?.[1]
        const body = text.slice(text.indexOf('\r\n\r\n') + 4)
        if (chunked) t.notMatch(body, /(^|\r\n)0\r\n\r\n$/, `${side} ${name}: no last chunk after a cut`)
        else
          t.ok(
            declared !== undefined && body.length < Number(declared),
            `${side} ${name}: shorter than declared`,
          )
      }
    }
    const noContent = await get('no-content-with-body')
    t.match(noContent, /^HTTP\/1\.1 204 /, `${side}: 204 relayed`)
    t.notMatch(noContent, /\r\ncontent-length:/i, `${side}: a 204 carries no Content-Length (RFC 9110 §8.6)`)
    t.notMatch(noContent, /\r\ntransfer-encoding:/i, `${side}: nor Transfer-Encoding (RFC 9112 §6.1)`)
    t.ok(noContent.endsWith('\r\n\r\n'), `${side}: and no body`)
    const head = await get('head-length', 'HEAD')
    t.match(head, /^HTTP\/1\.1 200 /, `${side}: HEAD answered`)
    t.match(
      head,
      /\r\ncontent-length: 10\r\n/i,
      `${side}: HEAD keeps the GET's Content-Length (RFC 9110 §9.3.2)`,
    )
    t.ok(head.endsWith('\r\n\r\n'), `${side}: and has no body`)
    const notModified = await get('not-modified')
    t.match(notModified, /^HTTP\/1\.1 304 /, `${side}: 304 relayed`)
    t.notMatch(notModified, /\r\ntransfer-encoding:/i, `${side}: a 304 is not chunked`)
    t.ok(notModified.endsWith('\r\n\r\n'), `${side}: and has no body`)
    const hints = await get('early-hints')
    t.match(hints, /^HTTP\/1\.1 103 Early Hints\r\n/, `${side}: a 1xx is forwarded (RFC 9110 §15.2)`)
    t.match(hints, /^link: <\/s\.css>; rel=preload\r\n/im, `${side}: with its fields`)
    t.match(hints, /\r\n\r\nHTTP\/1\.1 200 OK\r\n/, `${side}: then the final response`)
    const withLength = await get('early-hints-with-length')
    const interim = withLength.slice(0, withLength.indexOf('\r\n\r\n'))
    t.match(interim, /^HTTP\/1\.1 103 /, `${side}: 103 relayed`)
    t.notMatch(interim, /content-length/i, `${side}: without Content-Length (RFC 9110 §8.6: never on a 1xx)`)
    t.match(withLength, /\r\n\r\nok$/, `${side}: the final response follows intact`)
    const old = await exchange(await open(), `GET /case/early-hints HTTP/1.0\r\nHost: ${host}\r\n\r\n`)
    t.match(old, /^HTTP\/1\.1 200 OK\r\n/, `${side}: an HTTP/1.0 client gets no 1xx (RFC 9110 §15.2)`)
    const trailers = await get('trailers')
    const tail = trailers.slice(trailers.indexOf('\r\n0\r\n'))
    t.match(tail, /\r\nx-sum: 1\r\n/, `${side}: trailers relayed`)
    t.notMatch(
      tail,
      /\r\nx-svidecar-error:/i,
      `${side}: a trailer cannot pose as the sidecar's refusal marker`,
    )
    t.match(
      tail,
      /\r\nx-svidecar-upstream-error: SVD_POLICY_DENIED\r\n/,
      `${side}: it is renamed, as in the head`,
    )
    t.notMatch(tail, /\r\nkeep-alive:/i, `${side}: hop-by-hop trailer fields stay on their hop`)
    const hop = await get('hop-by-hop')
    t.match(hop, /^HTTP\/1\.1 200 /, `${side}: hop-by-hop answer relayed`)
    t.notMatch(hop, /\r\n(x-hop|keep-alive|proxy-authenticate):/i, `${side}: its hop-by-hop fields are not`)
  }
  const client = await edge.outboundClient()
  client.send('GET /fine HTTP/1.1\r\nHost: raw.test\r\n\r\n')
  t.equal((await client.next()).status, 200, 'the sidecar still serves')
})
