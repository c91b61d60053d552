// spiffeDispatcher with Node's own global fetch, not undici's: the README promises both. Node bundles its
// own undici (process.versions.undici), whose fetch hands the dispatcher handlers of the older callback
// style (onConnect, onHeaders, onData, onComplete); undici 8's Agent accepts only the controller style and
// threw "invalid onRequestStart method" for every request.
import { once } from 'node:events'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import {
  isSpiffeError,
  matchId,
  peerIdOf,
  type SpiffeError,
  spiffeTlsServer,
  X509Source,
} from 'workload-api-client'
import { spiffeDispatcher } from 'workload-api-client/undici'

const SERVER = 'spiffe://example.org/api'
const CLIENT = 'spiffe://example.org/client'
const OTHER = 'spiffe://example.org/other'
// Bigger than any socket buffer, so the body crosses the pause/resume path of the handler.
const BIG = 8 * 1024 * 1024

const api = await DevWorkloadApi.start({
  workloads: [{ spiffeId: SERVER }, { spiffeId: CLIENT }, { spiffeId: OTHER }],
})
t.teardown(() => api.close())

async function source(t: Test, spiffeId: string): Promise<X509Source> {
  const s = await X509Source.create({ address: api.endpoint, spiffeId, timeoutMs: 10_000 })
  t.teardown(() => s.close())
  return s
}

// @types/node types RequestInit's dispatcher with its own copy of undici's types (undici-types), which
// differ from undici 8's in a callback signature; at run time Node's fetch only calls dispatch().
function init(fields: Record<string, unknown>): RequestInit {
  return fields as RequestInit
}

async function serve(t: Test): Promise<{ url: string; handled: () => number }> {
  let handled = 0
  const spiffe = spiffeTlsServer({ source: await source(t, SERVER), authorizer: matchId(CLIENT) })
  const server = spiffe.attach(
    createServer(spiffe.options, async (req, res) => {
      handled++
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const sent = Buffer.concat(chunks)
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        res.end(Buffer.alloc(BIG, 0x61))
        return
      }
      res.writeHead(201, [
        ['content-type', 'text/plain'],
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
        ['x-peer', String(peerIdOf(req.socket))],
      ])
      res.end(`${req.method} ${sent.length}`)
    }),
  )
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    spiffe.close()
    server.closeAllConnections()
    server.close()
  })
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, handled: () => handled }
}

t.test('Node global fetch through spiffeDispatcher: status, repeated headers, request body', async (t) => {
  const served = await serve(t)
  const dispatcher = spiffeDispatcher({ source: await source(t, CLIENT), authorizer: matchId(SERVER) })
  t.teardown(() => dispatcher.close())
  // `globalThis.fetch` is Node's, whatever undici version the test imports elsewhere.
  const res = await globalThis.fetch(
    `${served.url}/echo`,
    init({
      method: 'POST',
      body: 'x'.repeat(1000),
      dispatcher,
    }),
  )
  t.equal(res.status, 201)
  t.equal(res.headers.get('x-peer'), CLIENT, 'the server saw the client SVID')
  t.same(res.headers.getSetCookie(), ['a=1', 'b=2'], 'repeated headers stay separate')
  t.equal(await res.text(), 'POST 1000')
})

t.test('Node global fetch: a large body arrives whole (backpressure pauses and resumes)', async (t) => {
  const served = await serve(t)
  const dispatcher = spiffeDispatcher({ source: await source(t, CLIENT), authorizer: matchId(SERVER) })
  t.teardown(() => dispatcher.close())
  const res = await globalThis.fetch(`${served.url}/big`, init({ dispatcher }))
  t.equal(res.status, 200)
  // Read slowly enough that undici's buffer fills and the handler must pause the socket.
  let size = 0
  for await (const chunk of res.body as ReadableStream<Uint8Array>) {
    size += chunk.length
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(size, BIG)
})

t.test('Node global fetch: a server with the wrong ID is refused with the library code', async (t) => {
  const served = await serve(t)
  const dispatcher = spiffeDispatcher({ source: await source(t, CLIENT), authorizer: matchId(OTHER) })
  t.teardown(() => dispatcher.close())
  const err = await globalThis.fetch(`${served.url}/echo`, init({ dispatcher })).then(
    () => undefined,
    (e: unknown) => e,
  )
  const cause = (err as { cause?: unknown } | undefined)?.cause
  t.ok(isSpiffeError(cause, 'SPIFFE_PEER_UNAUTHORIZED'), 'the cause is the SPIFFE refusal')
  t.equal((cause as SpiffeError).reason, 'UNAUTHORIZED')
  t.equal(served.handled(), 0, 'no request reached the handler')
})

t.test('Node global fetch: aborting a request in flight ends it', async (t) => {
  const served = await serve(t)
  const dispatcher = spiffeDispatcher({ source: await source(t, CLIENT), authorizer: matchId(SERVER) })
  t.teardown(() => dispatcher.close())
  const ac = new AbortController()
  const res = await globalThis.fetch(`${served.url}/big`, init({ dispatcher, signal: ac.signal }))
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  await reader.read()
  ac.abort()
  await t.rejects(
    (async () => {
      for (;;) if ((await reader.read()).done) return
    })(),
    { name: 'AbortError' },
  )
  // The dispatcher still serves the next request.
  const again = await globalThis.fetch(`${served.url}/echo`, init({ dispatcher }))
  t.equal(await again.text(), 'GET 0')
})
