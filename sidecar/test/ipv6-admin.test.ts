// The admin listener and the injector's webhook take bracketed IPv6 addresses like the data listeners: `[::1]:0`
// binds IPv6 loopback, `[::]` every address (IPv4 too: Node listens dual-stack), and what the processes log as
// their address is one a client can use again (`[::1]:port`, never the ambiguous `::1:port`). In a cluster,
// the kubelet probes the pod IP, which is IPv6 in an IPv6-only cluster: the injected admin address and the
// webhook's default take every address, not IPv4 only.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { request } from 'node:https'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DevCa, DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { parseConfig } from '../src/config/index.ts'
import { DEFAULT_OPTIONS } from '../src/inject/options.ts'
import { sidecarContainer } from '../src/inject/sidecar-spec.ts'
import { startWebhook } from '../src/inject/webhook.ts'
import { Sidecar } from '../src/sidecar.ts'
import { EchoApp } from './helpers/echo-app.ts'
import { AGENT, MCP } from './helpers/mesh.ts'
import { discard, quickBackoff, quietLogger } from './helpers/test-sidecar.ts'

const bin = fileURLToPath(new URL('../bin/svidecar.js', import.meta.url))
const SERVICE_NAME = 'svidecar-injector.svidecar-system.svc'

const hasIpv6Loopback = Object.values(networkInterfaces()).some((list) =>
  (list ?? []).some((i) => i.family === 'IPv6' && i.address === '::1'),
)
const skip = hasIpv6Loopback ? false : 'this host has no IPv6 loopback (::1) to bind'

function status(host: string, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host, port, path, agent: false, family: host.includes(':') ? 6 : 4 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    }).on('error', reject)
  })
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

async function workload(t: Test) {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: MCP, hint: 'mcp' },
      { spiffeId: AGENT, hint: 'agent' },
    ],
  })
  t.teardown(() => api.close())
  const app = await EchoApp.start()
  t.teardown(() => app.close())
  return { api, app }
}

function configYaml(endpoint: string, appUrl: string, admin: string): string {
  return `workloadApi: { socket: "${endpoint}", hint: mcp }
admin: { address: "${admin}" }
drainTimeout: 1s
inbound:
  - name: public
    address: "[::1]:0"
    forwardTo: "${appUrl}"
    authorize: { exact: "${AGENT}" }
`
}

t.test('admin.address takes [::1] and [::]', { skip }, async (t) => {
  const { api, app } = await workload(t)
  for (const [admin, clients] of [
    ['[::1]:0', ['::1']],
    ['[::]:0', ['::1', '127.0.0.1']],
  ] as const) {
    const config = parseConfig(configYaml(api.endpoint, app.url, admin), 'v6.yaml', {})
    const sidecar = await Sidecar.start(config, {
      identity: { backoff: quickBackoff },
      logger: quietLogger,
      auditStdout: discard(),
    })
    t.teardown(() => sidecar.destroy())
    const { port } = sidecar.addresses.admin
    for (const host of clients) {
      await waitFor(
        async () => (await status(host, port, '/readyz')) === 200,
        `${admin}: /readyz via ${host}`,
      )
      t.equal(await status(host, port, '/metrics'), 200, `${admin}: /metrics via ${host}`)
    }
  }
  const fromEnv = parseConfig(configYaml(api.endpoint, app.url, '127.0.0.1:0'), 'v6.yaml', {
    SVIDECAR_ADMIN_ADDRESS: '[::1]:15000',
  })
  t.same(fromEnv.admin.address, { host: '::1', port: 15000 }, 'SVIDECAR_ADMIN_ADDRESS takes it too')
})

function spawnLogged(t: Test, args: string[]): { child: ChildProcess; log: () => string } {
  const child = spawn(process.execPath, ['--conditions=svidecar-source', bin, ...args], {
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
  return { child, log: () => log }
}

/** The JSON log line carrying `msg`, once the process wrote it. */
async function logLine(run: { log: () => string }, msg: string): Promise<Record<string, unknown>> {
  await waitFor(() => run.log().includes(`"msg":"${msg}"`), msg)
  return JSON.parse(
    run
      .log()
      .split('\n')
      .find((l) => l.includes(`"msg":"${msg}"`)) as string,
  )
}

/** `[host]:port` split back into what a client dials. */
function dialable(address: string): { host: string; port: number } {
  const m = /^\[([0-9a-f:.]+)\]:(\d+)$/i.exec(address)
  if (m === null) throw new Error(`"${address}" is not a bracketed IPv6 host:port`)
  return { host: m[1] as string, port: Number(m[2]) }
}

t.test('svidecar run logs IPv6 listener addresses a client can dial', { skip }, async (t) => {
  const { api, app } = await workload(t)
  const dir = t.testdir()
  const config = join(dir, 'sidecar.yaml')
  writeFileSync(config, configYaml(api.endpoint, app.url, '[::1]:0'))
  const run = spawnLogged(t, ['run', '--config', config])
  const started = await logLine(run, 'svidecar started')
  t.match(started.admin, /^\[::1\]:\d+$/, 'the admin address in brackets')
  t.match((started.inbound as Record<string, string>).public, /^\[::1\]:\d+$/, 'the inbound one too')
  const admin = dialable(started.admin as string)
  await waitFor(async () => (await status(admin.host, admin.port, '/readyz')) === 200, 'readiness over ::1')
})

function writeServingPair(t: Test): { certFile: string; keyFile: string; ca: DevCa } {
  const ca = DevCa.create({ trustDomain: 'example.org' })
  const leaf = ca.issueX509Svid({ dnsNames: [SERVICE_NAME], extKeyUsage: ['serverAuth'] })
  const dir = t.testdir()
  const certFile = join(dir, 'tls.crt')
  const keyFile = join(dir, 'tls.key')
  writeFileSync(certFile, leaf.certChainPem)
  writeFileSync(keyFile, leaf.keyPem)
  return { certFile, keyFile, ca }
}

function webhookHealth(ca: DevCa, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    request(
      { host, port, path: '/healthz', ca: ca.bundlePem(), servername: SERVICE_NAME, agent: false },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
      .on('error', reject)
      .end()
  })
}

t.test('the webhook binds [::1] and [::]', { skip }, async (t) => {
  const { certFile, keyFile, ca } = writeServingPair(t)
  for (const [host, clients] of [
    ['::1', ['::1']],
    ['::', ['::1', '127.0.0.1']],
  ] as const) {
    const webhook = await startWebhook({
      host,
      port: 0,
      certFile,
      keyFile,
      reloadIntervalMs: 60_000,
      injector: DEFAULT_OPTIONS,
      logger: quietLogger,
    })
    t.teardown(() => webhook.close())
    for (const client of clients)
      t.equal(await webhookHealth(ca, client, webhook.address.port), 200, `[${host}] via ${client}`)
  }
})

t.test('svidecar inject-webhook --address [::1]:0 logs an address a client can dial', { skip }, async (t) => {
  const { certFile, keyFile, ca } = writeServingPair(t)
  const run = spawnLogged(t, [
    'inject-webhook',
    '--tls-cert',
    certFile,
    '--tls-key',
    keyFile,
    '--address',
    '[::1]:0',
  ])
  const started = await logLine(run, 'inject-webhook started')
  t.match(started.address, /^\[::1\]:\d+$/)
  const { host, port } = dialable(started.address as string)
  t.equal(await webhookHealth(ca, host, port), 200)
  run.child.kill('SIGTERM')
  await once(run.child, 'exit')
})

t.test('in a cluster, the injected admin address and the webhook take IPv6 pod IPs too', async (t) => {
  const container = sidecarContainer({ ...DEFAULT_OPTIONS, secret: undefined, outboundEnv: [] })
  const env = Object.fromEntries(
    (container.env as { name: string; value: string }[]).map((e) => [e.name, e.value]),
  )
  t.equal(env.SVIDECAR_ADMIN_ADDRESS, '[::]:15000', 'every address: the kubelet probes an IPv6 pod IP too')
  const help = spawnLogged(t, ['inject-webhook', '--help'])
  await once(help.child, 'exit')
  t.match(help.log(), /--address HOST:PORT[^\n]*\(default \[::\]:8443/)
})
