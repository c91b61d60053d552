// Expect: 100-continue (RFC 9110 §10.1.1) on both listeners: the sidecar answers 100 once the upstream can take
// the body, never forwards the expectation, and refuses with a final status (no 100, body unread, connection
// closed) when it already knows the answer. With curl's own behaviour and with a raw client that waits.
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { RawApp } from './helpers/raw-http.ts'
import { startRawMesh } from './helpers/raw-mesh.ts'

const MB = 1024 * 1024

function curl(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) =>
    execFile('curl', args, { maxBuffer: 16 * MB }, (err, stdout, stderr) =>
      err ? reject(Object.assign(err, { stderr })) : resolve({ stdout, stderr }),
    ),
  )
}

/** Bytes the app received for its last request, split into head and body. */
function lastRequest(app: RawApp): { head: string; body: string } {
  const all = app.received.join('')
  const start = all.lastIndexOf('POST ')
  const end = all.indexOf('\r\n\r\n', start)
  return { head: all.slice(start, end), body: all.slice(end + 4) }
}

t.test(
  'curl --data-binary @2MB.bin through the mesh: curl gets its 100 and the body arrives whole',
  async (t) => {
    const app = await RawApp.start(t, {})
    const edge = await startRawMesh(t, app.port)
    const file = join(t.testdir(), '2MB.bin')
    const data = Buffer.alloc(2 * MB)
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff
    writeFileSync(file, data)
    const { stdout, stderr } = await curl([
      '-sS',
      '-v',
      '--data-binary',
      `@${file}`,
      '-H',
      'content-type: application/octet-stream',
      '-H',
      'Host: mesh.test',
      `http://127.0.0.1:${edge.outboundPort}/upload`,
    ])
    t.match(stderr, /^> Expect: 100-continue/m, 'curl asked for a 100 (bodies over 1 MB)')
    t.match(stderr, /^< HTTP\/1\.1 100 Continue/m, 'and got it from the sidecar')
    t.notMatch(stderr, /Done waiting for 100-continue/, 'curl did not give up waiting')
    t.match(stderr, /^< HTTP\/1\.1 200 OK/m)
    t.equal(stdout, 'ok')
    const { head, body } = lastRequest(app)
    t.notMatch(head, /^expect:/im, 'the expectation was not forwarded')
    t.equal(body.length, data.length, 'the app received the whole body')
    t.ok(Buffer.from(body, 'latin1').equals(data), 'byte for byte')
  },
)

t.test('a raw client that waits for 100 Continue before sending the body, both directions', async (t) => {
  const app = await RawApp.start(t, {})
  const edge = await startRawMesh(t, app.port)
  const body = 'x'.repeat(100_000)
  for (const [direction, open, host] of [
    ['outbound', edge.outboundClient, 'raw.test'],
    ['outbound over the mesh', edge.outboundClient, 'mesh.test'],
    ['inbound', edge.inboundClient, 'mcp.test'],
  ] as const) {
    const client = await open()
    client.send(
      `POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
    )
    const interim = await client.next()
    t.equal(interim.status, 100, `${direction}: 100 Continue before any body byte`)
    client.send(body)
    const final = await client.next()
    t.equal(final.status, 200, `${direction}: the final status`)
    t.equal(final.body, 'ok')
    const seen = lastRequest(app)
    t.notMatch(seen.head, /^expect:/im, `${direction}: no Expect upstream`)
    t.equal(seen.body, body, `${direction}: the whole body upstream`)
    // The connection stays usable after a 100 exchange.
    client.send(`GET /again HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    t.equal((await client.next()).status, 200, `${direction}: keep-alive after the exchange`)
  }
})

t.test('refused from the head alone: final status, no 100, body never read, connection closed', async (t) => {
  const app = await RawApp.start(t, {})
  const edge = await startRawMesh(t, app.port)
  const cases = [
    ['outbound, no route', edge.outboundClient, 'nowhere.test', '', 404, 'SVD_ROUTE_NOT_FOUND'],
    ['outbound, upstream unreachable', edge.outboundClient, 'gone.test', '', 503, 'SVD_UPSTREAM_UNAVAILABLE'],
    [
      'inbound, a header name with "_"',
      edge.inboundClient,
      'mcp.test',
      'X_Spiffe_Id: x\r\n',
      400,
      'SVD_REQUEST_INVALID',
    ],
  ] as const
  for (const [label, open, host, extra, status, code] of cases) {
    const client = await open()
    client.send(
      `POST /upload HTTP/1.1\r\nHost: ${host}\r\n${extra}Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n`,
    )
    const res = await client.next()
    t.equal(res.status, status, `${label}: the final status comes first, without a 100`)
    t.equal(res.headers['x-svidecar-error'], code, `${label}: code`)
    await client.waitClosed()
    t.equal(client.pending, '', `${label}: nothing else was sent`)
  }
  t.same(app.received, [], 'the app received nothing')
})

t.test(
  'expectations other than 100-continue get 417 in the sidecar format; HTTP/1.0 ignores Expect',
  async (t) => {
    const app = await RawApp.start(t, {})
    const edge = await startRawMesh(t, app.port)
    for (const [direction, open, host] of [
      ['outbound', edge.outboundClient, 'raw.test'],
      ['inbound', edge.inboundClient, 'mcp.test'],
    ] as const) {
      const client = await open()
      client.send(
        `POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nExpect: teapot\r\n\r\nhello`,
      )
      const res = await client.next()
      t.equal(res.status, 417, `${direction}: status`)
      t.equal(res.headers['x-svidecar-error'], 'SVD_REQUEST_EXPECTATION_FAILED', `${direction}: code`)
    }
    t.same(app.received, [], 'nothing reached the app')
    // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored; the body follows at once.
    const client = await edge.outboundClient()
    client.send(
      'POST /old HTTP/1.0\r\nHost: raw.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello',
    )
    const res = await client.next()
    t.equal(res.status, 200, 'no 100, straight to the final answer')
    const seen = lastRequest(app)
    t.notMatch(seen.head, /^expect:/im, 'the field was not forwarded (undici would refuse it)')
    t.equal(seen.body, 'hello')
  },
)
