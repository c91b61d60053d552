// The pipeline itself over real sockets: stages in order, a promise only where a stage returns one, one
// refusal response, the capped body read, and response wrappers.
import { once } from 'node:events'
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { SvidecarError } from '../src/errors/index.ts'
import { Upstream } from '../src/forwarder/upstreams.ts'
import { readCappedBody } from '../src/pipeline/body.ts'
import { buildPipeline } from '../src/pipeline/build.ts'
import { Exchange } from '../src/pipeline/exchange.ts'
import type { Stage } from '../src/pipeline/stage.ts'
import { fixedRouteStage } from '../src/stages/route.ts'

async function listen(t: Test, server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return (server.address() as AddressInfo).port
}

/** An app that answers with what it got. */
async function echoApp(t: Test): Promise<{ url: URL; seen: string[] }> {
  const seen: string[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      seen.push(`${req.method} ${req.url} ${body}`)
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('echo:')
      res.end(body)
    })
  })
  const port = await listen(t, server)
  return { url: new URL(`http://127.0.0.1:${port}`), seen }
}

async function proxy(t: Test, stages: Stage[]): Promise<{ port: number; seen: string[] }> {
  const app = await echoApp(t)
  const upstream = new Upstream(
    { name: 'app', url: app.url, kind: 'plaintext' },
    { connectTimeoutMs: 1000, idleTimeoutMs: 1000, requestTimeoutMs: 0, minVersion: 'TLSv1.2' },
  )
  t.teardown(() => upstream.destroy())
  const pipeline = buildPipeline([fixedRouteStage(upstream), ...stages], {
    limits: { maxBodyBytes: 0, bodyIdleTimeoutMs: 0 },
    connectTimeoutMs: 1000,
  })
  const server = createServer((req, res) =>
    pipeline.request(new Exchange({ direction: 'outbound', listener: 'l', req, upgrade: false }), res),
  )
  return { port: await listen(t, server), seen: app.seen }
}

async function send(
  port: number,
  path: string,
  body?: string,
): Promise<{ status: number; code: string | undefined; text: string }> {
  const req = httpRequest({ host: '127.0.0.1', port, path, method: body === undefined ? 'GET' : 'POST' })
  req.end(body)
  const [res] = (await once(req, 'response')) as [IncomingMessage]
  let text = ''
  for await (const chunk of res) text += chunk
  return { status: res.statusCode ?? 0, code: res.headers['x-svidecar-error'] as string | undefined, text }
}

t.test('stages run in order; the first refusal is the answer and later stages never run', async (t) => {
  const ran: string[] = []
  const stage = (name: string, refuse?: (path: string) => boolean, async = false): Stage => ({
    name,
    onRequest(ex) {
      ran.push(name)
      const answer = refuse?.(ex.path)
        ? new SvidecarError('SVD_ROUTE_NOT_FOUND', `refused by ${name}`)
        : undefined
      return async ? Promise.resolve(answer) : answer
    },
  })
  const { port, seen } = await proxy(t, [
    stage('one', (p) => p === '/one'),
    stage('two', (p) => p === '/two', true),
    stage('three', (p) => p === '/three'),
  ])
  t.match(await send(port, '/ok'), { status: 200, text: 'echo:' })
  t.same(ran.splice(0), ['one', 'two', 'three'])
  t.match(await send(port, '/two'), { status: 404, code: 'SVD_ROUTE_NOT_FOUND' })
  t.same(ran.splice(0), ['one', 'two'], 'an async refusal stops the rest too')
  t.match(await send(port, '/three'), { status: 404, text: /refused by three/ })
  t.same(seen, ['GET /ok '], 'only the allowed request reached the app')
})

t.test('a stage that throws becomes SVD_INTERNAL, with nothing of its error in the response', async (t) => {
  const { port, seen } = await proxy(t, [
    {
      name: 'broken',
      onRequest() {
        throw new Error('secret detail')
      },
    },
  ])
  const res = await send(port, '/x')
  t.equal(res.status, 500)
  t.equal(res.code, 'SVD_INTERNAL')
  t.notMatch(res.text, /secret detail/)
  t.same(seen, [])
})

t.test('a stage that needs the body reads it under its cap; the upstream gets the same bytes', async (t) => {
  const bodies: string[] = []
  const { port, seen } = await proxy(t, [
    {
      name: 'reader',
      bodyLimit: 16,
      onRequest(ex) {
        bodies.push(ex.body?.toString() ?? '(none)')
        return undefined
      },
    },
  ])
  t.match(await send(port, '/small', 'sixteen bytes!!!'), { status: 200, text: 'echo:sixteen bytes!!!' })
  t.match(await send(port, '/empty'), { status: 200 })
  t.same(bodies, ['sixteen bytes!!!', ''])
  t.match(await send(port, '/big', 'seventeen bytes!!'), { status: 413, code: 'SVD_REQUEST_BODY_TOO_LARGE' })
  t.same(seen, ['POST /small sixteen bytes!!!', 'GET /empty '], 'the refused body went nowhere')
})

t.test('readCappedBody: counts a chunked body as it arrives and stops at the cap', async (t) => {
  const results: Array<string | Error> = []
  const server = createServer((req, res) => {
    readCappedBody(req, res, { maxBytes: 8, idleTimeoutMs: 200 }).then(
      (b) => {
        results.push(b.toString())
        res.end('ok')
      },
      (err: Error) => {
        results.push(err)
        res.writeHead((err as { status?: number }).status ?? 500, { connection: 'close' }).end()
      },
    )
  })
  const port = await listen(t, server)
  const chunked = async (parts: string[]) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/' })
    for (const p of parts) req.write(p)
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    res.resume()
    return res.statusCode
  }
  t.equal(await chunked(['abcd', 'efgh']), 200)
  t.equal(await chunked(['abcd', 'efgh', 'i']), 413)
  t.equal(results[0], 'abcdefgh')
  t.match(results[1], { code: 'SVD_REQUEST_BODY_TOO_LARGE', reason: 'BODY_OVER_STAGE_LIMIT' })
  // A body that stops arriving is cut after the idle limit, not held for as long as the client likes.
  const stalled = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/' })
  stalled.write('abc')
  const [res] = (await once(stalled, 'response')) as [IncomingMessage]
  res.resume()
  t.equal(res.statusCode, 408)
  t.match(results[2], { code: 'SVD_REQUEST_BODY_TIMEOUT', reason: 'BODY_IDLE' })
  stalled.destroy()
})

t.test('response wrappers see and may rewrite each chunk, and the end', async (t) => {
  const ends: number[] = []
  const { port } = await proxy(t, [
    {
      name: 'upper',
      onRequest: () => undefined,
      wrapResponse(_ex, head) {
        return {
          data: (chunk) => Buffer.from(chunk.toString().toUpperCase()),
          end: () => {
            ends.push(head.status)
            return undefined
          },
        }
      },
    },
  ])
  t.match(await send(port, '/x', 'quiet'), { status: 200, text: 'ECHO:QUIET' })
  t.same(ends, [200])
})

t.test(
  'a wrapper may rewrite the head and hold the body back until the end, waiting on a promise',
  async (t) => {
    const order: string[] = []
    const holdBack = (name: string, later: boolean): Stage => ({
      name,
      onRequest: () => undefined,
      wrapResponse() {
        const held: Buffer[] = []
        return {
          headers: { set: { [`x-${name}`]: 'yes' } },
          data: (chunk) => {
            held.push(chunk)
            return Buffer.alloc(0)
          },
          end: () => {
            const text = `[${name}:${Buffer.concat(held).toString()}]`
            order.push(name)
            return later ? new Promise((r) => setTimeout(() => r(Buffer.from(text)), 20)) : Buffer.from(text)
          },
        }
      },
    })
    const { port } = await proxy(t, [holdBack('outer', true), holdBack('inner', false)])
    const req = httpRequest({ host: '127.0.0.1', port, path: '/x', method: 'POST' })
    req.end('body')
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    let text = ''
    for await (const chunk of res) text += chunk
    t.equal(res.headers['x-outer'], 'yes')
    t.equal(res.headers['x-inner'], 'yes')
    // The outer wrapper's held-back bytes pass through the inner one, which holds them too, then flushes all.
    t.equal(text, '[inner:[outer:echo:body]]')
    t.same(order, ['outer', 'inner'])
  },
)
