/**
 * Data-plane benchmark (issue 3): a 1 KB POST sent direct to an app, through
 * two svidecar hops (outbound → mTLS → inbound), and through one mTLS hop
 * terminated by svidecar or by nginx, all in the same run.
 *
 * Placement on a 2-core machine: the proxy under test (svidecar or nginx) runs
 * alone on core 1 (`taskset`); the app, the load generator and the dev
 * Workload API share core 0. Run from the repository root: `npm run bench:proxy`.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DevWorkloadApi } from '@svidecar/certs'

const here = fileURLToPath(new URL('.', import.meta.url))
// The compiled build, as the container image runs it (`npm run build` first; bench:proxy does).
const bin = join(here, '..', 'sidecar', 'dist', 'cli', 'main.js')
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR
// Extra V8 flags for the sidecar processes, to compare heap settings (e.g. "--max-semi-space-size=2").
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const AGENT = 'spiffe://example.org/bench/agent'
const MCP = 'spiffe://example.org/bench/mcp'
const dir = mkdtempSync(join(tmpdir(), 'svidecar-bench-'))
const children: ChildProcess[] = []
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

function pinned(core: number, cmd: string, args: string[]): ChildProcess {
  const child = spawn('taskset', ['-c', String(core), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  return child
}

async function firstLine(child: ChildProcess, match: RegExp): Promise<string> {
  let buf = ''
  for await (const chunk of child.stdout ?? []) {
    buf += chunk
    const line = buf.split('\n').find((l) => match.test(l))
    if (line) return line
  }
  throw new Error(`process ended before printing ${match}`)
}

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : 0
}

interface LoadResult {
  ok: number
  failed: number
  rps: number
  p50: number
  p99: number
  max: number
}

async function load(options: object): Promise<LoadResult> {
  const child = pinned(0, process.execPath, [
    '--conditions=svidecar-source',
    join(here, 'load.ts'),
    JSON.stringify(options),
  ])
  const line = await firstLine(child, /^\{/)
  await once(child, 'exit')
  return JSON.parse(line) as LoadResult
}

async function sidecar(
  name: string,
  yaml: string,
): Promise<{ child: ChildProcess; started: Record<string, unknown> }> {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, yaml)
  const prof = PROFILE_DIR && name === 'inbound' ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []
  const child = pinned(1, process.execPath, [...NODE_FLAGS, ...prof, bin, 'run', '--config', file])
  let log = ''
  child.stderr?.on('data', (d) => {
    log += d
  })
  for (let i = 0; i < 200 && !log.includes('svidecar started'); i++)
    await new Promise((r) => setTimeout(r, 50))
  const line = log.split('\n').find((l) => l.includes('svidecar started'))
  if (!line) throw new Error(`${name} did not start:\n${log}`)
  const started = JSON.parse(line) as Record<string, unknown>
  for (let i = 0; i < 200; i++) {
    if ((await fetch(`http://${started.admin}/readyz`).catch(() => undefined))?.status === 200) break
    await new Promise((r) => setTimeout(r, 50))
  }
  return { child, started }
}

const api = await DevWorkloadApi.start({
  workloads: [
    { spiffeId: AGENT, hint: 'agent' },
    { spiffeId: MCP, hint: 'mcp' },
  ],
})
const app = pinned(0, process.execPath, [join(here, 'app.ts'), '0'])
const appPort = Number(await firstLine(app, /^\d+$/))

const inbound = await sidecar(
  'inbound',
  `workloadApi: { socket: "${api.endpoint}", hint: mcp }
admin: { address: "127.0.0.1:0" }
log: { level: info }
inbound:
  - name: mcp
    address: "127.0.0.1:0"
    forwardTo: "http://127.0.0.1:${appPort}"
    authorize: { exact: "${AGENT}" }
`,
)
const inboundAddr = (inbound.started.inbound as Record<string, string>).mcp as string
const outbound = await sidecar(
  'outbound',
  `workloadApi: { socket: "${api.endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
log: { level: info }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: mcp }]
upstreams:
  mcp: { url: "https://${inboundAddr}", spiffe: { exact: "${MCP}" } }
`,
)
const outboundAddr = (outbound.started.outbound as Record<string, string>).egress as string

// The load generator presents the agent's SVID when it speaks mTLS to a hop directly.
const agentSvid = api.currentSvid(AGENT)
const mcpSvid = api.currentSvid(MCP)
if (!agentSvid || !mcpSvid) throw new Error('dev Workload API issued no SVIDs')
const tls = { key: agentSvid.keyPem, cert: agentSvid.certChainPem, ca: api.bundlePem() }

// nginx in the place of the inbound hop: same certificate, same client-certificate requirement.
writeFileSync(join(dir, 'server.pem'), mcpSvid.certChainPem)
writeFileSync(join(dir, 'server.key'), mcpSvid.keyPem)
writeFileSync(join(dir, 'bundle.pem'), api.bundlePem())
const nginxPort = 20_000 + Math.floor(Math.random() * 20_000)
writeFileSync(
  join(dir, 'nginx.conf'),
  `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  upstream app { server 127.0.0.1:${appPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${nginxPort} ssl;
    ssl_certificate ${dir}/server.pem;
    ssl_certificate_key ${dir}/server.key;
    ssl_client_certificate ${dir}/bundle.pem;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
)
const nginx = pinned(1, 'nginx', [
  '-c',
  join(dir, 'nginx.conf'),
  '-p',
  dir,
  '-e',
  join(dir, 'nginx-error.log'),
])
for (let i = 0; i < 100; i++) {
  const up = await fetch(`https://127.0.0.1:${nginxPort}/`).then(
    () => true,
    (err: { cause?: { code?: string } }) => err.cause?.code !== 'ECONNREFUSED',
  )
  if (up) break
  await new Promise((r) => setTimeout(r, 50))
}

const idleRss = rss(inbound.child.pid as number)
const open = { mode: 'open', rate: 1000, seconds: SECONDS, connections: 64 }
const closed = { mode: 'closed', seconds: SECONDS, connections: 64 }
const direct = await load({ ...open, url: `http://127.0.0.1:${appPort}/x` })
let loadRss = 0
const sampler = setInterval(() => {
  loadRss = Math.max(loadRss, rss(inbound.child.pid as number), rss(outbound.child.pid as number))
}, 100)
const twoHops = await load({ ...open, url: `http://${outboundAddr}/x` })
clearInterval(sampler)
const nginxLatency = await load({ ...open, url: `https://127.0.0.1:${nginxPort}/x`, tls })
const inboundLatency = await load({ ...open, url: `https://${inboundAddr}/x`, tls })
const svidecarMax = await load({ ...closed, url: `https://${inboundAddr}/x`, tls })
const nginxMax = await load({ ...closed, url: `https://127.0.0.1:${nginxPort}/x`, tls })
const afterRss = rss(inbound.child.pid as number)

const f = (n: number | null, d = 2) => (n === null || Number.isNaN(n) ? '–' : n.toFixed(d))
const addedP50 = (twoHops.p50 - direct.p50) / 2
const addedP99 = (twoHops.p99 - direct.p99) / 2
const ratio = svidecarMax.rps / nginxMax.rps
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**')
const lines = [
  `node ${process.version}, ${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim().replace('nginx version: ', '')}, ${cpus()[0]?.model ?? ''} × ${cpus().length}, ${SECONDS} s per run, ${new Date().toISOString()}`,
  '',
  '| run | ok | failed | req/s | p50 ms | p99 ms | max ms |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...(
    [
      ['direct to the app, 1,000 req/s open loop', direct],
      ['two svidecar hops (outbound → mTLS → inbound), 1,000 req/s', twoHops],
      ['nginx terminating mTLS (one hop), 1,000 req/s', nginxLatency],
      ['svidecar inbound terminating mTLS (one hop), 1,000 req/s', inboundLatency],
      ['svidecar inbound (one mTLS hop), saturation, 64 connections', svidecarMax],
      ['nginx inbound (one mTLS hop), saturation, 64 connections', nginxMax],
    ] as const
  ).map(
    ([name, r]) =>
      `| ${name} | ${r.ok} | ${r.failed} | ${f(r.rps, 0)} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} |`,
  ),
  '',
  '| measure | value | target | verdict |',
  '| --- | ---: | ---: | --- |',
  `| added p50 per hop at 1,000 req/s | ${f(addedP50)} ms | | |`,
  `| added p99 per hop at 1,000 req/s | ${f(addedP99)} ms | ≤ 1 ms | ${verdict(addedP99 <= 1)} |`,
  `| one hop's saturation throughput vs nginx | ${f(ratio)}× (${f(svidecarMax.rps, 0)} vs ${f(nginxMax.rps, 0)} req/s) | ≥ 0.5× | ${verdict(ratio >= 0.5)} |`,
  `| RSS idle (inbound sidecar) | ${f(idleRss, 0)} MB | ≤ 60 MB | ${verdict(idleRss <= 60)} |`,
  `| RSS at 1,000 req/s (largest sidecar) | ${f(loadRss, 0)} MB | ≤ 120 MB | ${verdict(loadRss <= 120)} |`,
  `| RSS after saturation (inbound sidecar) | ${f(afterRss, 0)} MB | | |`,
]
process.stdout.write(`${lines.join('\n')}\n`)
nginx.kill('SIGTERM')
// SIGTERM drains the sidecars; with --cpu-prof they write their profiles on the way out.
inbound.child.kill('SIGTERM')
outbound.child.kill('SIGTERM')
await Promise.all([once(inbound.child, 'exit'), once(outbound.child, 'exit')])
await api.close()
process.exit(0)
