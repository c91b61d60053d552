// What the listeners rely on in Node's HTTP server, pinned on the Node that runs the tests: if an upgrade
// changes one of these, this file says which, before a listener test fails for a reason that is hard to see.
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { type AddressInfo, connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'

async function listen(t: Test, server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return (server.address() as AddressInfo).port
}

/** Sends `request` and collects everything until the server closes (or the deadline). */
async function exchange(port: number, request: string, deadlineMs = 10_000) {
  const socket: Socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  let text = ''
  socket.setEncoding('latin1')
  socket.on('data', (d: string) => {
    text += d
  })
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), deadlineMs)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
  if (request !== '') socket.write(request)
  const wasClosed = await closed
  socket.destroy()
  return { text, closed: wasClosed }
}

t.test('server.maxConnections drops the excess connection without writing a byte', async (t) => {
  const server = createServer((_req, res) => res.end('ok'))
  server.maxConnections = 1
  const dropped = once(server, 'drop')
  const port = await listen(t, server)
  const first = connect(port, '127.0.0.1')
  first.on('error', () => {})
  t.teardown(() => first.destroy())
  await once(first, 'connect')
  // Let the server accept the first before the second arrives.
  await new Promise<void>((resolve) => server.getConnections((_e, n) => (n === 1 ? resolve() : resolve())))
  const second = await exchange(port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n')
  await dropped
  t.equal(second.text, '', 'nothing written')
  t.ok(second.closed, 'just closed')
})

t.test(
  '"checkExpectation" fires for Expect values other than 100-continue; without it Node answers 417 itself',
  async (t) => {
    const plain = createServer((_req, res) => res.end('ok'))
    const plainPort = await listen(t, plain)
    const r = await exchange(
      plainPort,
      'GET / HTTP/1.1\r\nHost: a\r\nExpect: bogus\r\nConnection: close\r\n\r\n',
    )
    t.match(r.text, /^HTTP\/1\.1 417 /)
    t.notMatch(r.text, /x-svidecar-error/i)
    const hooked = createServer((_req, res) => res.end('ok'))
    let seen: string | undefined
    hooked.on('checkExpectation', (req, res) => {
      seen = req.headers.expect
      res.writeHead(418, { connection: 'close' })
      res.end()
    })
    const hookedPort = await listen(t, hooked)
    const h = await exchange(hookedPort, 'GET / HTTP/1.1\r\nHost: a\r\nExpect: bogus\r\n\r\n')
    t.match(h.text, /^HTTP\/1\.1 418 /)
    t.equal(seen, 'bogus')
  },
)

t.test('CONNECT with no "connect" listener: the socket is closed without a response', async (t) => {
  const server = createServer((_req, res) => res.end('ok'))
  const port = await listen(t, server)
  const r = await exchange(port, 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n')
  t.equal(r.text, '')
  t.ok(r.closed)
})

t.test(
  'headersTimeout, checked every connectionsCheckingInterval, also cuts a connection that sends nothing',
  async (t) => {
    const server = createServer(
      { headersTimeout: 500, requestTimeout: 0, connectionsCheckingInterval: 100 },
      (_q, s) => s.end(),
    )
    server.timeout = 0
    const errors: string[] = []
    // The listeners answer in clientError and must close the socket themselves: end() alone leaves it half open.
    server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
      errors.push(err.code ?? '')
      socket.destroy()
    })
    const port = await listen(t, server)
    const r = await exchange(port, '')
    t.ok(r.closed, 'closed')
    t.same(errors, ['ERR_HTTP_REQUEST_TIMEOUT'])
  },
)

t.test(
  'keepAliveTimeout ends in a "timeout" event on the server, which then decides; a busy socket gets none',
  async (t) => {
    const server = createServer({ keepAliveTimeout: 300, connectionsCheckingInterval: 100 }, (req, res) => {
      if (req.url === '/slow') setTimeout(() => res.end('slow'), 1500)
      else res.end('ok')
    })
    server.timeout = 0
    const timeouts: Socket[] = []
    server.on('timeout', (socket: Socket) => {
      timeouts.push(socket)
      socket.destroy()
    })
    const port = await listen(t, server)
    const idle = connect(port, '127.0.0.1')
    const busy = connect(port, '127.0.0.1')
    for (const s of [idle, busy]) s.on('error', () => {})
    t.teardown(() => {
      idle.destroy()
      busy.destroy()
    })
    await Promise.all([once(idle, 'connect'), once(busy, 'connect')])
    busy.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n')
    await once(busy, 'data')
    // Straight after the first response: the keep-alive timer is running when the slow request arrives.
    busy.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n')
    idle.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n')
    await once(idle, 'data')
    await once(idle, 'close')
    t.equal(timeouts.length, 1, 'the idle socket timed out')
    const [slow] = await once(busy, 'data')
    t.match(String(slow), /slow$/, 'the busy one was answered')
    t.equal(timeouts.length, 1)
  },
)

t.test(
  'more fields than maxHeadersCount: a parser error (431 by default), never a silent truncation',
  async (t) => {
    let reached = false
    const server = createServer((_req, res) => {
      reached = true
      res.end('ok')
    })
    server.maxHeadersCount = 5
    const errors: string[] = []
    server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
      errors.push(err.code ?? '')
      socket.destroy()
    })
    const port = await listen(t, server)
    await exchange(port, `GET / HTTP/1.1\r\nHost: a\r\n${'X-A: 1\r\n'.repeat(10)}Connection: close\r\n\r\n`)
    t.same(errors, ['HPE_HEADER_OVERFLOW'])
    t.equal(reached, false)
  },
)

t.test(
  'the HTTP layer attaches at construction: "connection" (http) and "secureConnection" (https)',
  async (t) => {
    // ProxyListener takes these listeners over to answer connections over the limit before HTTP sees them.
    t.equal(createServer().listeners('connection').length, 1)
    const https = createHttpsServer({})
    t.equal(https.listeners('secureConnection').length, 1)
    t.equal(https.listeners('connection').length, 1, 'plus TLS’s own on the raw socket')
  },
)
