// `svidecar run` in its own process against clients that never finish a TLS
// handshake: they are cut at tls.handshakeTimeout, so they cannot hold the
// listener's connection slots; the drain deadline ends whatever is left; and
// a sidecar that gets no SVID within workloadApi.startupTimeout exits non-zero.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { connect as netConnect, type Socket } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { EchoApp } from './helpers/echo-app.ts'
import { AGENT, MCP } from './helpers/mesh.ts'

const bin = fileURLToPath(new URL('../bin/svidecar.js', import.meta.url))

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

interface Running {
  child: ChildProcess
  log: () => string
  exited: Promise<number | null>
}

function runSidecar(t: Test, configYaml: string): Running {
  const dir = t.testdir()
  const config = join(dir, 'sidecar.yaml')
  writeFileSync(config, configYaml)
  const child = spawn(process.execPath, ['--conditions=svidecar-source', bin, 'run', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  let log = ''
  child.stdout?.on('data', (d) => {
    log += d
  })
  child.stderr?.on('data', (d) => {
    log += d
  })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  return { child, log: () => log, exited }
}

async function startServer(t: Test, yaml: string) {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp' },
    ],
  })
  t.teardown(() => api.close())
  const app = await EchoApp.start()
  t.teardown(() => app.close())
  const run = runSidecar(
    t,
    `workloadApi: { socket: "${api.endpoint}", hint: mcp }
admin: { address: "127.0.0.1:0" }
inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "${app.url}"
    authorize: { exact: "${AGENT}" }
${yaml}`,
  )
  await waitFor(() => /"msg":"svidecar started"/.test(run.log()), 'the sidecar to start')
  const started = JSON.parse(
    run
      .log()
      .split('\n')
      .find((l) => l.includes('svidecar started')) as string,
  )
  const [host, port] = (started.inbound.public as string).split(':') as [string, string]
  const admin = started.admin as string
  await waitFor(async () => (await fetch(`http://${admin}/readyz`)).status === 200, 'readiness')
  return { api, app, run, host, port: Number(port), admin }
}

/** Raw TCP connections that never send a byte; resolves once each is connected (or refused). */
async function idleConnections(host: string, port: number, n: number) {
  const sockets: Socket[] = []
  const closed: Promise<void>[] = []
  for (let i = 0; i < n; i++) {
    const s = netConnect(port, host)
    s.on('error', () => {})
    closed.push(new Promise((r) => s.on('close', () => r())))
    sockets.push(s)
    await Promise.race([once(s, 'connect'), once(s, 'close')])
  }
  return { sockets, allClosed: Promise.all(closed) }
}

/** A request from an authorized peer over mTLS; resolves with the status, or 0 if the connection failed. */
function authorizedRequest(api: DevWorkloadApi, host: string, port: number): Promise<number> {
  const svid = api.ca.issueX509Svid({ spiffeId: AGENT })
  return new Promise((resolve) => {
    const req = httpsRequest(
      {
        host,
        port,
        path: '/after',
        key: svid.keyPem,
        cert: svid.certChainPem,
        ca: api.bundlePem(),
        checkServerIdentity: () => undefined,
        agent: false,
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
    req.on('error', () => resolve(0))
    req.end()
  })
}

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.split(' ').at(-1))
  }
  return 0
}

t.test(
  'idle connections beyond maxConnections are cut at the handshake timeout; then an authorized client gets in; SIGTERM exits 0',
  async (t) => {
    const { api, run, host, port, admin } = await startServer(
      t,
      `limits: { maxConnections: 8 }
tls: { handshakeTimeout: 1s }
drainTimeout: 3s
`,
    )
    // More than the limit. The limit is enforced when a handshake completes (the excess is answered 503), so
    // connections that never finish one count against it until the handshake timeout ends them.
    const idle = await idleConnections(host, port, 12)
    await idle.allClosed
    t.pass('the sidecar closed every idle connection; none was closed by this client')
    await waitFor(
      async () => (await authorizedRequest(api, host, port)) === 200,
      'an authorized request to succeed',
    )
    t.pass('an authorized client got through after the timeout')
    const metrics = await (await fetch(`http://${admin}/metrics`)).text()
    t.equal(
      metricValue(metrics, 'svidecar_tls_rejections_total', {
        listener: 'public',
        direction: 'inbound',
        code: 'SVD_TLS_HANDSHAKE_FAILED',
        reason: 'HANDSHAKE_TIMEOUT',
      }),
      12,
      'each idle connection is counted once as HANDSHAKE_TIMEOUT',
    )
    const lines = run
      .log()
      .split('\n')
      .filter((l) => l.includes('"reason":"HANDSHAKE_TIMEOUT"'))
    t.equal(lines.length, 12, 'and logged once')
    t.match(lines[0], /"msg":"TLS handshake refused: the handshake did not finish in time"/)

    run.child.kill('SIGTERM')
    t.equal(await run.exited, 0, 'SIGTERM: exit 0')
  },
)

t.test('the drain deadline ends handshakes that would otherwise stay open for a minute', async (t) => {
  const { run, host, port } = await startServer(
    t,
    `tls: { handshakeTimeout: 60s }
drainTimeout: 1s
`,
  )
  const idle = await idleConnections(host, port, 5)
  run.child.kill('SIGTERM')
  let code: number | null | undefined
  run.exited.then((c) => {
    code = c
  })
  // Well inside the 60 s handshake timeout: only the 1 s drain deadline can have ended them.
  await waitFor(() => code !== undefined, 'the process to exit', 20_000)
  t.equal(code, 0, 'exit 0 at the drain deadline')
  await idle.allClosed
  t.pass('every half-open connection was closed')
})

t.test('workloadApi.startupTimeout: no SVID in time is a clear error and a non-zero exit', async (t) => {
  const denying = await DevWorkloadApi.start({ workloads: [{ spiffeId: AGENT, hint: 'agent' }] })
  t.teardown(() => denying.close())
  denying.denyAll()
  const cases: [string, string][] = [
    ['no Workload API at the socket', `unix://${t.testdirName}-missing/agent.sock`],
    ['a Workload API that issues nothing (PERMISSION_DENIED)', denying.endpoint],
  ]
  for (const [name, socket] of cases) {
    const run = runSidecar(
      t,
      `workloadApi: { socket: "${socket}", startupTimeout: 1s }
admin: { address: "127.0.0.1:0" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: x }]
upstreams:
  x: { url: "https://127.0.0.1:9" }
`,
    )
    let code: number | null | undefined
    run.exited.then((c) => {
      code = c
    })
    await waitFor(() => code !== undefined, `${name}: the process to exit`)
    t.equal(code, 1, `${name}: exit 1`)
    const line = run
      .log()
      .split('\n')
      .find((l) => l.includes('"level":"error"'))
    t.ok(line, `${name}: says why`)
    t.match(JSON.parse(line ?? '{}'), {
      level: 'error',
      code: 'SVD_IDENTITY_UNAVAILABLE',
      msg: /no X\.509-SVID from the Workload API within workloadApi\.startupTimeout \(1000 ms\)/,
    })
  }
})
