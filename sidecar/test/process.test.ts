// The sidecar as operators run it: `svidecar run --config FILE` in its own
// process. Its memory while 100 MB pass through, readiness, and SIGTERM drain.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { parseConfig } from '../src/config/index.ts'
import { Sidecar } from '../src/sidecar.ts'
import { EchoApp } from './helpers/echo-app.ts'
import { AGENT, MCP } from './helpers/mesh.ts'

const bin = fileURLToPath(new URL('../bin/svidecar.js', import.meta.url))
const run = promisify(execFile)

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : 0
}

/** The server-side sidecar as a child process; the agent side runs in this process. */
async function setup(t: Test) {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp' },
    ],
  })
  t.teardown(() => api.close())
  const app = await EchoApp.start()
  t.teardown(() => app.close())
  const dir = t.testdir()
  const config = join(dir, 'server.yaml')
  writeFileSync(
    config,
    `workloadApi: { socket: "${api.endpoint}", hint: mcp }
admin: { address: "127.0.0.1:0" }
drainTimeout: 5s
inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "${app.url}"
    authorize: { exact: "${AGENT}" }
`,
  )
  const child: ChildProcess = spawn(
    process.execPath,
    ['--conditions=svidecar-source', bin, 'run', '--config', config],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  t.teardown(() => child.kill('SIGKILL'))
  let log = ''
  child.stderr?.on('data', (d) => {
    log += d
  })
  child.stdout?.on('data', (d) => {
    log += d
  })
  await waitFor(() => /"msg":"svidecar started"/.test(log), 'the sidecar to start', 15_000)
  const started = JSON.parse(log.split('\n').find((l) => l.includes('svidecar started')) as string)
  const inbound = started.inbound.public as string
  const admin = started.admin as string
  await waitFor(async () => (await fetch(`http://${admin}/readyz`)).status === 200, 'readiness', 15_000)

  const agent = await Sidecar.start(
    parseConfig(
      `workloadApi: { socket: "${api.endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: mcp }]
upstreams:
  mcp: { url: "https://${inbound}", spiffe: { exact: "${MCP}" } }
`,
      'agent.yaml',
      {},
    ),
  )
  t.teardown(() => agent.destroy())
  await agent.identity.waitReady(5000)
  const out = agent.addresses.outbound.egress
  return { api, app, child, admin, outboundUrl: `http://127.0.0.1:${out?.port}`, log: () => log }
}

function body(size: number): Readable {
  const chunk = Buffer.alloc(256 * 1024, 0x62)
  let sent = 0
  return new Readable({
    read() {
      if (sent >= size) {
        this.push(null)
        return
      }
      sent += chunk.length
      this.push(chunk)
    },
  })
}

async function roundTrip(outboundUrl: string, size: number): Promise<[number, number]> {
  const res = await fetch(`${outboundUrl}/count`, {
    method: 'POST',
    body: body(size),
    duplex: 'half',
  } as RequestInit)
  const up = ((await res.json()) as { bytes: number }).bytes
  const down = await fetch(`${outboundUrl}/bytes?n=${size}`)
  let received = 0
  for await (const c of down.body as unknown as AsyncIterable<Uint8Array>) received += c.length
  return [up, received]
}

t.test('100 MB bodies pass through a sidecar process whose memory stays flat', async (t) => {
  const { child, outboundUrl } = await setup(t)
  const pid = child.pid as number
  // Warm the process up (JIT, pools, TLS) before taking the baseline.
  for (let i = 0; i < 20; i++)
    await (await fetch(`${outboundUrl}/echo`, { method: 'POST', body: 'x'.repeat(65536) })).text()
  const baseline = rssOf(pid)
  let peak = baseline
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(pid))
  }, 25)
  t.teardown(() => clearInterval(sampler))
  const MB = 1024 * 1024
  t.same(await roundTrip(outboundUrl, 100 * MB), [100 * MB, 100 * MB], '100 MB up and 100 MB down, intact')
  const afterFirst = peak
  t.same(await roundTrip(outboundUrl, 300 * MB), [300 * MB, 300 * MB], 'then 300 MB each way')
  clearInterval(sampler)
  // Whatever the heap settles at, it must not grow with the size of what passes through.
  t.ok(
    afterFirst - baseline < 96 * MB,
    `RSS rose ${Math.round((afterFirst - baseline) / MB)} MB during the first 200 MB`,
  )
  t.ok(
    peak - afterFirst < 16 * MB,
    `and ${Math.round((peak - afterFirst) / MB)} MB more during the next 600 MB`,
  )
})

t.test(
  'SIGTERM: not ready at once, in-flight requests finish, new connections refused, exit 0',
  async (t) => {
    const { child, admin, outboundUrl, app } = await setup(t)
    const hanging = once(app.events, 'hanging')
    // An in-flight request the app answers only after SIGTERM.
    const inflight = new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${outboundUrl}/hang`, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      req.on('error', reject)
      req.end()
    })
    await hanging
    child.kill('SIGTERM')
    await waitFor(
      async () => {
        try {
          return (await fetch(`http://${admin}/readyz`)).status === 503
        } catch {
          return true
        }
      },
      'readiness to turn off',
      15_000,
    )
    const refused = await fetch(`${outboundUrl}/echo`, { method: 'POST', body: 'late' })
    t.equal(refused.status, 503, 'a new request after SIGTERM finds the listener closed')
    t.equal(refused.headers.get('x-svidecar-error'), 'SVD_UPSTREAM_UNAVAILABLE')
    // Let the app answer the request that was in flight.
    app.finishHanging(200)
    t.equal(await inflight, 200, 'the in-flight request completed')
    const [code] = await once(child, 'exit')
    t.equal(code, 0, 'exit 0 after draining')
  },
)

t.test('svidecar config check validates files and names the line of each problem', async (t) => {
  const dir = t.testdir({
    'good.yaml': `inbound:
  - name: public
    address: "0.0.0.0:15443"
    forwardTo: "http://127.0.0.1:8080"
    authorize: { trustDomain: example.org }
`,
    'bad.yaml': `inbound:
  - name: public
    address: "0.0.0.0:99999"
    forwardTo: "http://10.0.0.1:8080"
    authorize: { exact: "spiffe://example.org/a/../b" }
    colour: blue
`,
  })
  const good = await run(process.execPath, [
    '--conditions=svidecar-source',
    bin,
    'config',
    'check',
    join(dir, 'good.yaml'),
  ])
  t.match(good.stdout, /good\.yaml: ok \(1 inbound, 0 outbound, 0 upstreams\)/)
  const bad = await run(process.execPath, [
    '--conditions=svidecar-source',
    bin,
    'config',
    'check',
    join(dir, 'bad.yaml'),
  ]).catch((err: { code: number; stderr: string }) => err)
  t.equal((bad as { code: number }).code, 1)
  const stderr = (bad as { stderr: string }).stderr
  t.match(stderr, /SVD_CONFIG_INVALID/)
  t.match(stderr, /bad\.yaml:3:\d+: inbound\[0\]\.address/)
  t.match(stderr, /bad\.yaml:5:\d+: inbound\[0\]\.authorize\.exact/)
  t.match(stderr, /bad\.yaml:6:\d+: inbound\[0\]\.colour: unknown field/)
})
