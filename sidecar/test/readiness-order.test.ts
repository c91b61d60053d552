// /readyz says ready only once the SVID is held AND every data listener is bound: a kubelet (or a test) that
// polls /readyz and connects the moment it answers 200 must never meet ECONNREFUSED. The window between the
// admin listener binding and the last data listener binding is a few milliseconds, too short to hit reliably,
// so this test widens it on purpose: it holds back the data listeners' bind calls (Node's own
// net.Server.prototype.listen, deferred, not replaced) while the admin listener is up and the SVID is in.
import { once } from 'node:events'
import { get } from 'node:http'
import { connect, createServer, Server } from 'node:net'
import { DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { parseConfig } from '../src/config/index.ts'
import { on } from '../src/observe/events.ts'
import { Sidecar } from '../src/sidecar.ts'
import { EchoApp } from './helpers/echo-app.ts'
import { AGENT, MCP } from './helpers/mesh.ts'
import { discard, quickBackoff, quietLogger } from './helpers/test-sidecar.ts'

async function freePort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const { port } = s.address() as { port: number }
  await new Promise((r) => s.close(r))
  return port
}

function readyz(port: number): Promise<number | 'refused'> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/readyz', agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'ECONNREFUSED' ? resolve('refused') : reject(err),
    )
  })
}

function metricsText(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        body += c
      })
      res.on('end', () => resolve(body))
    })
    req.on('error', reject)
  })
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

type Listen = (this: Server, ...args: unknown[]) => Server

/** Defers every bind on 127.0.0.1 except `allowedPort`'s until release() (or the test's end). */
function holdBinds(t: Test, allowedPort: number) {
  const original = Server.prototype.listen as unknown as Listen
  const held: Array<() => void> = []
  let holding = true
  const patched: Listen = function (this: Server, ...args: unknown[]) {
    if (holding && args[0] !== allowedPort && args[1] === '127.0.0.1') {
      held.push(() => original.apply(this, args))
      return this
    }
    return original.apply(this, args)
  }
  Server.prototype.listen = patched as unknown as Server['listen']
  const release = () => {
    if (!holding) return
    holding = false
    Server.prototype.listen = original as unknown as Server['listen']
    for (const bind of held.splice(0)) bind()
  }
  t.teardown(release)
  return { held: () => held.length, release }
}

t.test('/readyz stays 503 until every data listener is bound, even with the SVID in hand', async (t) => {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: MCP, hint: 'mcp' },
      { spiffeId: AGENT, hint: 'agent' },
    ],
  })
  t.teardown(() => api.close())
  const app = await EchoApp.start()
  t.teardown(() => app.close())
  const adminPort = await freePort()
  const config = parseConfig(
    `workloadApi: { socket: "${api.endpoint}", hint: mcp }
admin: { address: "127.0.0.1:${adminPort}" }
drainTimeout: 1s
inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "${app.url}"
    authorize: { exact: "${AGENT}" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - upstream: app
upstreams:
  app:
    url: "https://127.0.0.1:1"
    spiffe: { exact: "${AGENT}" }
`,
    'readiness.yaml',
    {},
  )
  let svid = false
  const off = on('identity', (e) => {
    if (e.status === 'ready') svid = true
  })
  t.teardown(off)

  const binds = holdBinds(t, adminPort)
  const starting = Sidecar.start(config, {
    identity: { backoff: quickBackoff },
    logger: quietLogger,
    auditStdout: discard(),
  })
  starting.then(
    (s) => t.teardown(() => s.destroy()),
    () => {},
  )
  await waitFor(() => svid && binds.held() > 0, 'the SVID and a data listener waiting to bind')
  await waitFor(async () => (await readyz(adminPort)) !== 'refused', 'the admin listener')
  t.equal(await readyz(adminPort), 503, 'not ready while a data listener is not yet bound')
  t.match(await metricsText(adminPort), /^svidecar_ready 0$/m, 'the ready gauge says what /readyz says')

  binds.release()
  const sidecar = await starting
  await waitFor(async () => (await readyz(adminPort)) === 200, '/readyz to say ready')
  const { inbound, outbound } = sidecar.addresses
  const ports = [...Object.values(inbound), ...Object.values(outbound)].map((a) => a.port)
  t.equal(ports.length, 2)
  for (const port of ports)
    t.ok(await canConnect(port), `listener on ${port} accepts once /readyz says ready`)
  t.match(await metricsText(adminPort), /^svidecar_ready 1$/m, 'the ready gauge follows')
})

t.test('polled from outside, the first 200 from /readyz means every listener accepts', async (t) => {
  const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: MCP, hint: 'mcp' }] })
  t.teardown(() => api.close())
  const app = await EchoApp.start()
  t.teardown(() => app.close())
  for (let round = 0; round < 5; round++) {
    const adminPort = await freePort()
    const ports = [await freePort(), await freePort(), await freePort()]
    const config = parseConfig(
      `workloadApi: { socket: "${api.endpoint}", hint: mcp }
admin: { address: "127.0.0.1:${adminPort}" }
drainTimeout: 1s
inbound:
${ports
  .map(
    (p, i) => `  - name: in${i}
    address: "127.0.0.1:${p}"
    forwardTo: "${app.url}"
    authorize: { exact: "${AGENT}" }
`,
  )
  .join('')}`,
      'readiness.yaml',
      {},
    )
    const starting = Sidecar.start(config, {
      identity: { backoff: quickBackoff },
      logger: quietLogger,
      auditStdout: discard(),
    })
    let sidecar: Sidecar | undefined
    starting.then(
      (s) => {
        sidecar = s
      },
      () => {},
    )
    await waitFor(async () => (await readyz(adminPort)) === 200, '/readyz to say ready')
    const accepted = await Promise.all(ports.map(canConnect))
    t.same(accepted, [true, true, true], `round ${round}: every listener accepts at the first 200`)
    await starting
    await sidecar?.destroy()
  }
})
