// The traffic every mesh must carry unharmed: run against the dev Workload API
// (sidecar/test/e2e.test.ts) and against real SPIRE (test/spire/e2e.test.ts).
import { once } from 'node:events'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'
import type { Test } from 'tap'
import { WebSocket } from 'ws'
import { AGENT, type Sidecars } from './mesh.ts'

function get(url: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, resolve)
    req.on('error', reject)
    req.end()
  })
}

export function trafficSuite(t: Test, mesh: Sidecars, agentId = AGENT): void {
  t.test('JSON round trip; the app sees the verified agent ID, never a forged one', async (t) => {
    const res = await fetch(`${mesh.outboundUrl}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-spiffe-id': 'spiffe://example.org/admin' },
      body: JSON.stringify({ hello: 'world' }),
    })
    t.equal(res.status, 200)
    t.same(await res.json(), { hello: 'world' })
    t.equal(res.headers.get('x-seen-peer'), agentId)
    const last = mesh.app.seen.at(-1)
    t.same(
      last?.rawHeaders.filter((_, i, a) => i % 2 === 0 && a[i]?.toLowerCase() === 'x-spiffe-id'),
      ['x-spiffe-id'],
      'exactly one peer-ID header reached the app',
    )
  })

  t.test('chunked request body', async (t) => {
    const body = Readable.from(['alpha ', 'beta ', 'gamma'])
    const res = await fetch(`${mesh.outboundUrl}/echo`, {
      method: 'POST',
      body,
      duplex: 'half',
    } as RequestInit)
    t.equal(await res.text(), 'alpha beta gamma')
  })

  t.test('SSE: each of 1,000 events reaches the client before the next is sent', async (t) => {
    const opened = once(mesh.app.events, 'sse-open')
    const res = await get(`${mesh.outboundUrl}/sse`)
    await opened
    t.equal(res.headers['content-type'], 'text/event-stream')
    let buffer = ''
    let waiting: ((line: string) => void) | undefined
    res.setEncoding('utf8')
    res.on('data', (d: string) => {
      buffer += d
      let idx = buffer.indexOf('\n\n')
      while (idx !== -1) {
        const event = buffer.slice(0, idx)
        buffer = buffer.slice(idx + 2)
        waiting?.(event)
        idx = buffer.indexOf('\n\n')
      }
    })
    let inOrder = 0
    for (let i = 0; i < 1000; i++) {
      const got = new Promise<string>((resolve) => {
        waiting = resolve
      })
      mesh.app.sendEvent(String(i))
      if ((await got) === `data: ${i}`) inOrder++
    }
    t.equal(inOrder, 1000)
    mesh.app.endEvents()
    await once(res, 'end')
  })

  t.test('WebSocket echo through both sidecars: text, binary, subprotocol, close code', async (t) => {
    const ws = new WebSocket(`${mesh.outboundUrl.replace('http', 'ws')}/ws`, ['mcp'])
    const inbox: (string | Buffer)[] = []
    let wake: (() => void) | undefined
    ws.on('message', (data, isBinary) => {
      inbox.push(isBinary ? (data as Buffer) : data.toString())
      wake?.()
    })
    const next = async () => {
      while (inbox.length === 0) await new Promise<void>((r) => (wake = r))
      return inbox.shift() as string | Buffer
    }
    await once(ws, 'open')
    t.equal(ws.protocol, 'mcp', 'the subprotocol crossed both hops')
    t.same(JSON.parse((await next()) as string), { peer: agentId, protocol: 'mcp' })
    ws.send('hello')
    t.equal(await next(), 'hello')
    const blob = Buffer.from([0, 1, 2, 255])
    ws.send(blob)
    t.same(await next(), blob)
    ws.send('close-please')
    const [code, reason] = (await once(ws, 'close')) as [number, Buffer]
    t.equal(code, 4001, 'the app’s close code reached the client')
    t.equal(reason.toString(), 'asked to')
  })

  t.test('a client abort reaches the app', async (t) => {
    const hanging = once(mesh.app.events, 'hanging')
    const aborted = once(mesh.app.events, 'aborted')
    const req = httpRequest(`${mesh.outboundUrl}/hang`)
    req.on('error', () => {})
    req.end()
    await hanging
    req.destroy()
    t.same(await aborted, ['/hang'])
  })

  t.test('an upstream crash mid-response reaches the client as a broken response', async (t) => {
    const res = await get(`${mesh.outboundUrl}/crash`)
    t.equal(res.statusCode, 200)
    const outcome = await new Promise<string>((resolve) => {
      res.on('error', () => resolve('error'))
      res.on('aborted', () => resolve('aborted'))
      res.on('end', () => resolve('end'))
      res.resume()
    })
    t.not(outcome, 'end', 'a truncated body never looks complete')
  })
}
