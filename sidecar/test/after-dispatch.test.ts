/**
 * Work the sidecar defers off the request path (the audit line, metrics of the decision, the prompt's token
 * estimate) must not run before the upstream request it follows has been written. undici writes a request on a
 * reused keep-alive connection from a setImmediate of its own (its idle-socket check), so a plain setImmediate
 * queued on the request path runs first; afterDispatch runs after it.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Pool } from 'undici'
import { afterDispatch } from '../src/forwarder/after-dispatch.ts'

t.test('afterDispatch runs after undici writes a request on a kept-alive connection', async (t) => {
  const server = createServer((_req, res) => res.end('ok'))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 1 })
  t.teardown(() => pool.close())
  // The first request opens the connection; the ones measured below reuse it.
  await (await pool.request({ method: 'GET', path: '/' })).body.text()

  const order: string[] = []
  const onHeaders = () => order.push('request written')
  subscribe('undici:client:sendHeaders', onHeaders)
  t.teardown(() => unsubscribe('undici:client:sendHeaders', onHeaders))

  // As on the request path: work queued first, then the dispatch.
  setImmediate(() => order.push('setImmediate'))
  afterDispatch(() => order.push('afterDispatch'))
  const answered = pool.request({ method: 'GET', path: '/' })
  await (await answered).body.text()
  await new Promise((r) => setImmediate(setImmediate, r))
  t.same(order, ['setImmediate', 'request written', 'afterDispatch'])
})
