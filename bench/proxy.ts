/**
 * Data-plane benchmark (issue 3), method in bench/RESULTS.md:
 * a 1 KB POST through svidecar, through nginx and through a minimal undici
 * proxy (the Node floor) in the same place, against the same request sent
 * direct, all in one run, contenders alternated over repetitions.
 *
 * Placement on a 2-core host: the proxy under test alone on core 1
 * (`taskset`); load generator, app, upstream nginx and the dev Workload API on
 * core 0. Cells:
 *   inbound hop:  load (mTLS) → proxy → app           baseline: load → app
 *   outbound hop: load → proxy → (mTLS) → nginx → app baseline: load (mTLS) → nginx → app
 *   two hops:     load → outbound → (mTLS) → inbound → app, both proxies on core 1
 *   saturation:   one inbound hop, 64 connections, closed loop
 *   cgroup:       svidecar and nginx each in a cgroup of 1 CPU and 256 MB (as Kubernetes limits a sidecar)
 *                 instead of on a core, in the inbound and saturation groups, where the host lets us make one
 *   uploads:      100 concurrent 1 MB POSTs through one inbound hop: RSS before, peak, and 10 s after
 *
 * Run from the repository root: `npm run bench:proxy` (needs `nginx`: apt-get install nginx-light).
 * BENCH_SECONDS (10), BENCH_WARMUP (5), BENCH_REPS (5), BENCH_NODE_FLAGS (V8 flags for the sidecars),
 * BENCH_ONLY=inbound,uploads,... (groups to run), BENCH_CGROUP=0 (no cgroup contenders).
 * Smoke run: BENCH_SECONDS=2 BENCH_WARMUP=1 BENCH_REPS=1 BENCH_ONLY=inbound,saturation,uploads npm run bench:proxy
 */
import { type ChildProcess, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, release, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureFortio } from '../test/harness/fortio-install.ts'
import { imageNodeFlags } from '../test/harness/image.ts'
import { type Cgroup, createCgroup } from './cgroup.ts'
import { startFloor } from './floor.ts'
import { floorRss, type UploadResult, uploads } from './memory-cells.ts'
import { inboundConfig, outboundConfig } from './mesh-configs.ts'
import { startNginx } from './nginx.ts'
import { benchPki } from './pki.ts'
import { cpuMs, firstLine, pinned, rssMb, sidecarStarted, sleep } from './procs.ts'

const here = fileURLToPath(new URL('.', import.meta.url))
// The compiled build, as the container image runs it (`npm run build` first; bench:proxy does).
const bin = join(here, '..', 'sidecar', 'dist', 'cli', 'main.js')
// The sidecars start as the image starts them (its ENTRYPOINT's Node flags), unless BENCH_NODE_FLAGS says otherwise.
const NODE_FLAGS =
  process.env.BENCH_NODE_FLAGS === undefined
    ? imageNodeFlags()
    : process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5)
const REPS = Number(process.env.BENCH_REPS ?? 5)
const RATE = 1000
const PROXY_CORE = 1
const REST_CORE = 0
const AGENT = 'spiffe://example.org/bench/agent'
const MCP = 'spiffe://example.org/bench/mcp'
const dir = mkdtempSync(join(tmpdir(), 'svidecar-bench-'))
process.on('exit', () => {
  if (!process.env.BENCH_KEEP_STDOUT) rmSync(dir, { recursive: true, force: true })
})
// This process hosts the dev Workload API: keep it off the proxy's core.
spawnSync('taskset', ['-pc', String(REST_CORE), String(process.pid)])

// Kubernetes limits a sidecar with a cgroup (CFS quota and memory limit), not a core of its own: one contender
// of each kind runs that way too, in a cgroup of 1 CPU and 256 MB, free to run on either core.
const CGROUP_LIMITS = { cpus: 1, memoryBytes: 256 * 1024 * 1024 }
const cgroups: { svidecar?: Cgroup; nginx?: Cgroup } = {}
const cgroupChildren: ChildProcess[] = []
if (process.env.BENCH_CGROUP !== '0') {
  for (const name of ['svidecar', 'nginx'] as const) {
    const g = createCgroup(`svidecar-bench-${process.pid}-${name}`, CGROUP_LIMITS)
    if (typeof g === 'string') {
      process.stderr.write(`no cgroup cells: ${g}\n`)
      break
    }
    cgroups[name] = g
  }
  if (cgroups.nginx === undefined) {
    cgroups.svidecar?.remove()
    delete cgroups.svidecar
  }
}
/** Ends the cgroup contenders and removes their cgroups (a cgroup with a process in it cannot be removed). */
async function removeCgroups(): Promise<void> {
  const running = cgroupChildren.filter((c) => c.exitCode === null && c.signalCode === null)
  for (const c of running) c.kill('SIGKILL')
  await Promise.all(running.map((c) => once(c, 'exit')))
  for (const g of Object.values(cgroups)) g.remove()
}
process.on('exit', () => {
  for (const c of cgroupChildren) c.kill('SIGKILL')
})

interface LoadResult {
  ok: number
  failed: number
  rps: number
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
  /** CPU milliseconds of each watched process over the measured window. */
  cpuMs: number[]
}

interface LoadOptions {
  url: string
  /** Present the agent's SVID (mTLS to the hop). */
  mtls?: boolean
  /** Requests per second; 0 = as fast as the connections go (saturation). */
  qps: number
  connections: number
  warmup: number
  watch: number[]
}

let runs = 0
async function fortio(o: LoadOptions, seconds: number): Promise<FortioJson> {
  const out = join(dir, `fortio-${runs++}.json`)
  const child = pinned(REST_CORE, fortioPath, [
    'load',
    '-qps',
    String(o.qps),
    '-c',
    String(o.connections),
    // Connections start spread over the period instead of firing together every 1/qps × c.
    '-uniform',
    '-t',
    `${seconds}s`,
    '-payload-size',
    '1024',
    '-content-type',
    'application/json',
    '-p',
    '50,90,99,99.9',
    // 10 µs histogram buckets: fortio's default (1 ms) would round every sub-millisecond tail to 1.00.
    '-r',
    '0.00001',
    '-json',
    out,
    '-quiet',
    ...(o.mtls ? ['-cert', files.agentCert, '-key', files.agentKey, '-k'] : []),
    o.url,
  ])
  let err = ''
  child.stderr?.on('data', (d) => {
    if (err.length < 65_536) err += d
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  if (code !== 0) throw new Error(`fortio exited with ${code}:\n${err}`)
  return JSON.parse(readFileSync(out, 'utf8')) as FortioJson
}

interface FortioJson {
  ActualQPS: number
  RetCodes: Record<string, number>
  DurationHistogram: { Count: number; Max: number; Percentiles: { Percentile: number; Value: number }[] }
}

async function load(o: LoadOptions): Promise<LoadResult> {
  await fortio(o, o.warmup)
  const before = o.watch.map(cpuMs)
  const r = await fortio(o, SECONDS)
  const cpu = o.watch.map((pid, i) => cpuMs(pid) - (before[i] as number))
  const pct = (p: number) =>
    1000 * (r.DurationHistogram.Percentiles.find((x) => x.Percentile === p)?.Value ?? Number.NaN)
  const ok = r.RetCodes['200'] ?? 0
  return {
    ok,
    failed: r.DurationHistogram.Count - ok,
    rps: (r.ActualQPS * ok) / Math.max(1, r.DurationHistogram.Count),
    p50: pct(50),
    p90: pct(90),
    p99: pct(99),
    p999: pct(99.9),
    max: 1000 * r.DurationHistogram.Max,
    cpuMs: cpu,
  }
}

async function sidecar(
  name: string,
  yaml: string,
  cgroup?: Cgroup,
): Promise<{ pid: number; started: Record<string, unknown> }> {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, yaml)
  const args = [...NODE_FLAGS, bin, 'run', '--config', file]
  const child =
    cgroup === undefined ? pinned(PROXY_CORE, process.execPath, args) : cgroup.spawn(process.execPath, args)
  if (cgroup !== undefined) cgroupChildren.push(child)
  // Never let a pipe fill and stall the sidecar (e.g. with --trace-gc in BENCH_NODE_FLAGS); keep it for a look.
  child.stdout?.pipe(createWriteStream(join(dir, `${name}.stdout`)))
  if (process.env.BENCH_KEEP_STDOUT) process.stderr.write(`${name} stdout: ${join(dir, `${name}.stdout`)}\n`)
  const started = await sidecarStarted(child, name)
  for (let i = 0; ; i++) {
    if ((await fetch(`http://${started.admin}/readyz`).catch(() => undefined))?.status === 200) break
    if (i === 200) throw new Error(`${name} did not become ready`)
    await sleep(50)
  }
  return { pid: child.pid as number, started }
}

async function minimalProxy(listen: 'inbound' | 'outbound', upstream: string, svid: Pem): Promise<Proc> {
  const tls = { key: svid.keyPem, cert: svid.certChainPem, ca: api.bundlePem() }
  const { pid, port } = await startFloor(PROXY_CORE, NODE_FLAGS, { listen, upstream, tls })
  return { pid, port }
}

interface Pem {
  keyPem: string
  certChainPem: string
}
interface Proc {
  pid: number
  port: number
}

async function nginx(
  name: string,
  place: number | Cgroup,
  server: string,
  upstreamPort: number,
): Promise<Proc> {
  const spawn = (cmd: string, args: string[]) => {
    if (typeof place === 'number') return pinned(place, cmd, args)
    const child = place.spawn(cmd, args)
    cgroupChildren.push(child)
    return child
  }
  const { pid, port } = await startNginx({ dir, name, spawn, server, upstreamPort })
  return { pid, port }
}

// ---- set-up ------------------------------------------------------------------------------------------------
const fortioPath = await ensureFortio()
const { api, files, pem } = await benchPki(dir, AGENT, MCP)

const appChild = pinned(REST_CORE, process.execPath, [join(here, 'app.ts'), '0'])
const app: Proc = { pid: appChild.pid as number, port: Number(await firstLine(appChild, /^\d+$/)) }

const terminateMtls = `
    ssl_certificate ${files.mcpCert};
    ssl_certificate_key ${files.mcpKey};
    ssl_client_certificate ${files.bundle};
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    location / { proxy_pass http://next; proxy_http_version 1.1; proxy_set_header Connection ""; }`
// The upstream of every outbound cell, on the load generator's core.
const nginxUpstream = await nginx('nginx-upstream', REST_CORE, terminateMtls, app.port)
const inboundYaml = inboundConfig(api.endpoint, app.port, AGENT)
const inbound = await sidecar('inbound', inboundYaml)
const inboundAddr = (inbound.started.inbound as Record<string, string>).mcp as string
const outbound = await sidecar('outbound', outboundConfig(api.endpoint, inboundAddr, MCP, nginxUpstream.port))
const outboundAddr = (outbound.started.outbound as Record<string, string>).egress as string
// The dev Workload API issues an SVID when a workload first asks: the sidecars have by now.
const agentSvid = api.currentSvid(AGENT)
const mcpSvid = api.currentSvid(MCP)
if (!agentSvid || !mcpSvid) throw new Error('dev Workload API issued no SVIDs')
files.agentCert = pem('agent.pem', agentSvid.certChainPem)
files.agentKey = pem('agent.key', agentSvid.keyPem)
const nginxIn = await nginx('nginx-in', PROXY_CORE, terminateMtls, app.port)
const nginxOut = await nginx(
  'nginx-out',
  PROXY_CORE,
  `
    location / {
      proxy_pass https://next;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate ${files.agentCert};
      proxy_ssl_certificate_key ${files.agentKey};
      proxy_ssl_trusted_certificate ${files.bundle};
      proxy_ssl_verify on;
      proxy_ssl_name mcp.bench;
      proxy_ssl_session_reuse on;
    }`,
  nginxUpstream.port,
)

const minimalIn = await minimalProxy('inbound', `http://127.0.0.1:${app.port}`, mcpSvid)
const minimalOut = await minimalProxy('outbound', `https://127.0.0.1:${nginxUpstream.port}`, agentSvid)
// The minimal pair for the two-hop cell: out → in → app.
const minimalIn2 = await minimalProxy('inbound', `http://127.0.0.1:${app.port}`, mcpSvid)
const minimalOut2 = await minimalProxy('outbound', `https://127.0.0.1:${minimalIn2.port}`, agentSvid)

// The same inbound sidecar and nginx, each in its cgroup instead of on core 1.
const limited =
  cgroups.svidecar === undefined || cgroups.nginx === undefined
    ? undefined
    : {
        svidecar: await sidecar('inbound-cgroup', inboundYaml, cgroups.svidecar),
        nginx: await nginx('nginx-in-cgroup', cgroups.nginx, terminateMtls, app.port),
      }
const limitedAddr =
  limited === undefined ? '' : ((limited.svidecar.started.inbound as Record<string, string>).mcp as string)
const CG = `cgroup ${CGROUP_LIMITS.cpus} CPU, ${CGROUP_LIMITS.memoryBytes / 1048576} MB`

const idleRss = { inbound: rssMb(inbound.pid), outbound: rssMb(outbound.pid) }
// A bare Node process with the same flags: the floor under any Node sidecar's RSS.
const floor = await floorRss(NODE_FLAGS)

// ---- cells -----------------------------------------------------------------------------------------------------
interface Cell {
  group: string
  name: string
  options: Omit<LoadOptions, 'watch'>
  /** The proxies whose CPU counts for this cell. */
  watch: number[]
}
// 16 connections at 1,000 req/s, as in Istio's published runs; 64 for saturation.
const open = { qps: RATE, connections: 16, warmup: WARMUP }
const closed = { qps: 0, connections: 64, warmup: 2 }
function limitedCells(group: string, load: typeof open): Cell[] {
  if (limited === undefined) return []
  return [
    {
      group,
      name: `svidecar (${CG})`,
      options: { ...load, url: `https://${limitedAddr}/x`, mtls: true },
      watch: [limited.svidecar.pid],
    },
    {
      group,
      name: `nginx (${CG})`,
      options: { ...load, url: `https://127.0.0.1:${limited.nginx.port}/x`, mtls: true },
      watch: [limited.nginx.pid],
    },
  ]
}
const groups: Cell[][] = [
  [
    {
      group: 'base',
      name: 'direct to the app',
      options: { ...open, url: `http://127.0.0.1:${app.port}/x` },
      watch: [],
    },
    {
      group: 'base',
      name: 'direct to nginx upstream (mTLS)',
      options: { ...open, url: `https://127.0.0.1:${nginxUpstream.port}/x`, mtls: true },
      watch: [],
    },
  ],
  [
    {
      group: 'inbound',
      name: 'svidecar',
      options: { ...open, url: `https://${inboundAddr}/x`, mtls: true },
      watch: [inbound.pid],
    },
    {
      group: 'inbound',
      name: 'nginx',
      options: { ...open, url: `https://127.0.0.1:${nginxIn.port}/x`, mtls: true },
      watch: [nginxIn.pid],
    },
    {
      group: 'inbound',
      name: 'minimal undici proxy',
      options: { ...open, url: `https://127.0.0.1:${minimalIn.port}/x`, mtls: true },
      watch: [minimalIn.pid],
    },
    ...limitedCells('inbound', open),
  ],
  [
    {
      group: 'outbound',
      name: 'svidecar',
      options: { ...open, url: `http://${outboundAddr}/x` },
      watch: [outbound.pid],
    },
    {
      group: 'outbound',
      name: 'nginx',
      options: { ...open, url: `http://127.0.0.1:${nginxOut.port}/x` },
      watch: [nginxOut.pid],
    },
    {
      group: 'outbound',
      name: 'minimal undici proxy',
      options: { ...open, url: `http://127.0.0.1:${minimalOut.port}/x` },
      watch: [minimalOut.pid],
    },
  ],
  [
    {
      group: 'two hops',
      name: 'svidecar → svidecar',
      options: { ...open, url: `http://${outboundAddr}/two` },
      watch: [outbound.pid, inbound.pid],
    },
    {
      group: 'two hops',
      name: 'minimal → minimal',
      options: { ...open, url: `http://127.0.0.1:${minimalOut2.port}/two` },
      watch: [minimalOut2.pid, minimalIn2.pid],
    },
  ],
  [
    {
      group: 'saturation',
      name: 'svidecar',
      options: { ...closed, url: `https://${inboundAddr}/x`, mtls: true },
      watch: [inbound.pid],
    },
    {
      group: 'saturation',
      name: 'nginx',
      options: { ...closed, url: `https://127.0.0.1:${nginxIn.port}/x`, mtls: true },
      watch: [nginxIn.pid],
    },
    {
      group: 'saturation',
      name: 'minimal undici proxy',
      options: { ...closed, url: `https://127.0.0.1:${minimalIn.port}/x`, mtls: true },
      watch: [minimalIn.pid],
    },
    ...limitedCells('saturation', closed),
  ],
]

// BENCH_ONLY=inbound,outbound runs only those groups (and the baselines), for quick comparisons.
const only = process.env.BENCH_ONLY?.split(',')
const chosen =
  only === undefined
    ? groups
    : groups.filter((g) => g[0]?.group === 'base' || only.includes(g[0]?.group ?? ''))
const results = new Map<Cell, LoadResult[]>()
let loadRss = 0
for (let rep = 0; rep < REPS; rep++) {
  for (const group of chosen) {
    // A/B/A/B: the order of contenders flips on every repetition.
    for (const cell of rep % 2 === 0 ? group : [...group].reverse()) {
      const sampler =
        cell.group === 'saturation'
          ? undefined
          : setInterval(() => {
              loadRss = Math.max(loadRss, rssMb(inbound.pid), rssMb(outbound.pid))
            }, 100)
      const r = await load({ ...cell.options, watch: cell.watch })
      if (sampler) clearInterval(sampler)
      results.set(cell, [...(results.get(cell) ?? []), r])
      process.stderr.write(
        `rep ${rep + 1}/${REPS} ${cell.group}: ${cell.name}: p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)} rps ${r.rps.toFixed(0)}\n`,
      )
    }
  }
}
const afterRss = rssMb(inbound.pid)

// 100 concurrent 1 MB uploads through one inbound hop, each contender in turn: RSS before, at its peak, 10 s after.
const uploadRuns: { name: string; result: UploadResult }[] = []
if (only === undefined || only.includes('uploads')) {
  const tls = {
    key: readFileSync(files.agentKey, 'utf8'),
    cert: readFileSync(files.agentCert, 'utf8'),
    ca: api.bundlePem(),
  }
  const contenders = [
    { name: 'svidecar', pid: inbound.pid, url: `https://${inboundAddr}/upload` },
    { name: 'nginx', pid: nginxIn.pid, url: `https://127.0.0.1:${nginxIn.port}/upload` },
    { name: 'minimal undici proxy', pid: minimalIn.pid, url: `https://127.0.0.1:${minimalIn.port}/upload` },
    ...(limited === undefined
      ? []
      : [{ name: `svidecar (${CG})`, pid: limited.svidecar.pid, url: `https://${limitedAddr}/upload` }]),
  ]
  for (const c of contenders) {
    const result = await uploads(c.pid, { url: c.url, tls })
    uploadRuns.push({ name: c.name, result })
    process.stderr.write(
      `uploads: ${c.name}: ${result.idle.toFixed(1)} → peak ${result.peak.toFixed(1)} → ${result.after.toFixed(1)} MB, statuses ${JSON.stringify(result.statuses)}\n`,
    )
  }
}
if (process.env.BENCH_DUMP_METRICS) {
  // Where the sidecars' memory sits and how many handshakes they made, from their own metrics.
  for (const [name, sc] of [
    ['inbound', inbound],
    ['outbound', outbound],
  ] as const) {
    const text = await (await fetch(`http://${sc.started.admin}/metrics`)).text()
    const wanted =
      /^(nodejs_heap_space_size_used|nodejs_external|process_resident|svidecar_tls_handshakes_total|svidecar_requests_total)/
    process.stderr.write(
      `${name}:\n${text
        .split('\n')
        .filter((l) => wanted.test(l))
        .join('\n')}\n`,
    )
  }
}

// ---- report ----------------------------------------------------------------------------------------------------
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}
const range = (xs: number[], d = 2) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`
interface Summary {
  p50: number
  p90: number
  p99: number
  p999: number
  rps: number
  failed: number
  /** vCPU per 1,000 requests/s: CPU seconds of the watched proxies per second, per 1k req/s. */
  vcpuPer1k: number
  p99s: number[]
  rpss: number[]
}
function summary(cell: Cell): Summary {
  const rs = results.get(cell) ?? []
  return {
    p50: median(rs.map((r) => r.p50)),
    p90: median(rs.map((r) => r.p90)),
    p99: median(rs.map((r) => r.p99)),
    p999: median(rs.map((r) => r.p999)),
    rps: median(rs.map((r) => r.rps)),
    failed: rs.reduce((n, r) => n + r.failed, 0),
    vcpuPer1k: median(rs.map((r) => r.cpuMs.reduce((a, b) => a + b, 0) / 1000 / SECONDS / (r.rps / 1000))),
    p99s: rs.map((r) => r.p99),
    rpss: rs.map((r) => r.rps),
  }
}
const cells = chosen.flat()
const s = new Map(cells.map((c) => [c, summary(c)]))
const find = (group: string, name: string) =>
  s.get(cells.find((c) => c.group === group && c.name === name) as Cell) as Summary
const directApp = find('base', 'direct to the app')
const directNginx = find('base', 'direct to nginx upstream (mTLS)')
const f = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '–')
const nginxV = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim().replace('nginx version: ', '')
const host = `node ${process.version} (OpenSSL ${process.versions.openssl}), ${nginxV}, ${cpus()[0]?.model ?? ''} × ${cpus().length}, Linux ${release()}`
const lines = [
  `${host}; ${REPS} repetitions × (${WARMUP} s warm-up + ${SECONDS} s measured) per cell, contenders alternated; ${new Date().toISOString()}`,
  '',
  'Latency in ms at 1,000 req/s open loop (median of the repetitions; p99 range in brackets). Added = cell − its baseline.',
  '',
  '| cell | p50 | p90 | p99 [range] | p99.9 | added p50 | added p99 | vCPU per 1k req/s | failed |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...cells
    .filter((c) => c.group !== 'saturation')
    .map((c) => {
      const x = s.get(c) as Summary
      const base = c.group === 'outbound' ? directNginx : directApp
      const hops = c.group === 'two hops' ? 2 : 1
      const added =
        c.group === 'base' ? ['', ''] : [f((x.p50 - base.p50) / hops), f((x.p99 - base.p99) / hops)]
      const perHop = hops === 2 ? ' (per hop)' : ''
      return `| ${c.group}: ${c.name} | ${f(x.p50)} | ${f(x.p90)} | ${f(x.p99)} [${range(x.p99s)}] | ${f(x.p999)} | ${added[0]}${added[0] ? perHop : ''} | ${added[1]}${added[1] ? perHop : ''} | ${c.watch.length ? f(x.vcpuPer1k, 3) : ''} | ${x.failed} |`
    }),
  '',
  'Saturation of one inbound hop on one core (closed loop, 64 connections):',
  '',
  '| proxy | req/s [range] | × nginx (same repetition, same placement) | p50 ms | p99 ms | failed |',
  '| --- | ---: | ---: | ---: | ---: | ---: |',
  ...cells
    .filter((c) => c.group === 'saturation')
    .map((c) => {
      const x = s.get(c) as Summary
      // The host's speed drifts between repetitions; a ratio within one repetition does not.
      const nginxRuns = find('saturation', c.name.includes('cgroup') ? `nginx (${CG})` : 'nginx').rpss
      const ratios = x.rpss.map((r, i) => r / (nginxRuns[i] as number))
      return `| ${c.name} | ${f(x.rps, 0)} [${range(x.rpss, 0)}] | ${f(median(ratios))} [${range(ratios)}] | ${f(x.p50)} | ${f(x.p99)} | ${x.failed} |`
    }),
  '',
  `RSS of svidecar: idle inbound ${f(idleRss.inbound, 0)} MB, idle outbound ${f(idleRss.outbound, 0)} MB (a bare Node process with the same flags: ${f(floor, 0)} MB); largest at 1,000 req/s ${f(loadRss, 0)} MB; inbound after saturation ${f(afterRss, 0)} MB.`,
  ...(limited === undefined
    ? ['', 'No cgroup cells: no writable cgroup on this host (see the message above).']
    : []),
  ...(uploadRuns.length === 0
    ? []
    : [
        '',
        '100 concurrent 1 MB uploads through one inbound hop (RSS in MB; before = after 3 s idle):',
        '',
        '| proxy | before | peak [+ above before] | 10 s after [vs before] | statuses |',
        '| --- | ---: | ---: | ---: | --- |',
        ...uploadRuns.map(
          ({ name, result: r }) =>
            `| ${name} | ${f(r.idle, 0)} | ${f(r.peak, 0)} [+${f(r.peak - r.idle, 0)}] | ${f(r.after, 0)} [${r.after >= r.idle ? '+' : ''}${f(((r.after - r.idle) / r.idle) * 100, 0)} %] | ${Object.entries(
              r.statuses,
            )
              .map(([k, v]) => `${v}× ${k}`)
              .join(', ')} |`,
        ),
      ]),
]
process.stdout.write(`${lines.join('\n')}\n`)
const record = {
  command: 'npm run bench:proxy',
  env: {
    BENCH_SECONDS: SECONDS,
    BENCH_WARMUP: WARMUP,
    BENCH_REPS: REPS,
    BENCH_NODE_FLAGS: NODE_FLAGS.join(' '),
  },
  host,
  date: new Date().toISOString(),
  cells: cells.map((c) => ({ group: c.group, name: c.name, runs: results.get(c) })),
  rss: { idle: idleRss, floor, atLoad: loadRss, afterSaturation: afterRss },
  uploads: uploadRuns,
  cgroup: limited === undefined ? null : { limits: CGROUP_LIMITS },
}
// Only a full run with the image's settings is the record RESULTS.md quotes; trials go to results/raw/ (not committed).
const full = only === undefined && process.env.BENCH_NODE_FLAGS === undefined
const out = full
  ? join(here, 'results', 'proxy.json')
  : join(here, 'results', 'raw', `proxy-${Date.now()}.json`)
mkdirSync(dirname(out), { recursive: true })
writeFileSync(out, `${JSON.stringify(record, null, 2)}\n`)
process.stderr.write(`recorded in ${out}\n`)
await removeCgroups()
await api.close()
process.exit(0)
