/**
 * What one request costs a proxy hop, in the proxy's own CPU time and garbage (issue 13), beside the minimal
 * undici proxy (the Node floor, bench/minimal-proxy.ts) and nginx. Latency is not measured here: on a shared
 * host it is noise; CPU time per request is not.
 *
 * A fixed number of 1 KB POSTs is sent closed loop on kept-alive connections (fortio, `-qps 0 -n N -c C`),
 * and the proxy's utime + stime is read from /proc/<pid>/stat before and after. Contenders are interleaved
 * and the order flips on every repetition; the median of the repetitions is reported, with the range.
 *
 * Placement as in bench/proxy.ts: the proxies on core 1, fortio, the app, the upstream nginx and the dev
 * Workload API (this process) on core 0. Cells:
 *   inbound:  fortio (mTLS) → proxy → app
 *   outbound: fortio → proxy → (mTLS) → nginx → app
 *   two hops: fortio → outbound proxy → (mTLS) → inbound proxy → app (both proxies on core 1; CPU of both)
 *
 * Run from the repository root:
 *   npm run bench:hop   (node --conditions=svidecar-source bench/hop-cpu.ts)
 * The sidecars run from the sources (`sidecar/src/cli/main.ts`, type stripping costs nothing per request) with
 * the image's Node flags. Environment:
 *   BENCH_REQUESTS (20000) per measured window, BENCH_WARMUP (3000) requests before each window,
 *   BENCH_CONNECTIONS (8), BENCH_REPS (5), BENCH_ONLY=inbound,outbound,two
 *   BENCH_BASELINE=[label=]<dir>[,...]: more svidecars from other checkouts' sources (e.g. `git archive <commit>` unpacked
 *     there, with a `node_modules` symlink to this one), run as an extra contender: before/after in one run.
 *   BENCH_GC=1: the Node contenders run with --trace-gc-nvp; GCs and bytes allocated (V8 heap, not Buffer
 *     backing stores) per request are counted from it. The trace costs some CPU itself: compare CPU figures
 *     from runs without it.
 *   BENCH_ALT=1: also the node:http floors of bench/minimal-http-proxy.ts (pooled Agent; one upstream
 *     connection per downstream connection), the alternatives to undici for a lighter plain-hop path.
 *   BENCH_CPU_PROF=<dir>: --cpu-prof into <dir> for the Node contenders (written when they exit at the end).
 *   BENCH_NODE_FLAGS: Node flags instead of the image's.
 */
import { type ChildProcess, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, release, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { ensureFortio } from '../test/harness/fortio-install.ts'
import { imageNodeFlags } from '../test/harness/image.ts'
import { floorArgv } from './floor.ts'
import { inboundConfig, outboundConfig } from './mesh-configs.ts'
import { startNginx } from './nginx.ts'
import { benchPki } from './pki.ts'
import { cpuMs, firstLine, pinned, sidecarStarted, sleep } from './procs.ts'

const here = fileURLToPath(new URL('.', import.meta.url))
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3000)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8)
const REPS = Number(process.env.BENCH_REPS ?? 5)
const GC = process.env.BENCH_GC === '1'
const PROF = process.env.BENCH_CPU_PROF === undefined ? undefined : resolve(process.env.BENCH_CPU_PROF)
// label=dir pairs; a bare dir is labelled "baseline".
const BASELINES = (process.env.BENCH_BASELINE ?? '')
  .split(',')
  .filter(Boolean)
  .map((entry) => {
    const eq = entry.indexOf('=')
    return eq === -1
      ? { label: 'baseline', root: resolve(entry) }
      : { label: entry.slice(0, eq), root: resolve(entry.slice(eq + 1)) }
  })
const ALT = process.env.BENCH_ALT === '1'
const ONLY = process.env.BENCH_ONLY?.split(',')
const NODE_FLAGS =
  process.env.BENCH_NODE_FLAGS === undefined
    ? imageNodeFlags()
    : process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean)
const PROXY_CORE = 1
const REST_CORE = 0
const AGENT = 'spiffe://example.org/bench/agent'
const MCP = 'spiffe://example.org/bench/mcp'
const dir = mkdtempSync(join(tmpdir(), 'svidecar-hop-cpu-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
spawnSync('taskset', ['-pc', String(REST_CORE), String(process.pid)])
if (PROF !== undefined) mkdirSync(PROF, { recursive: true })

function nodeFlags(name: string): string[] {
  return [
    ...NODE_FLAGS,
    ...(GC ? ['--trace-gc-nvp'] : []),
    ...(PROF === undefined
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${PROF}`, `--cpu-prof-name=${name}.cpuprofile`]),
  ]
}

/** Per process: GCs seen and V8 bytes allocated, from --trace-gc-nvp lines on its stdout. */
interface GcTally {
  gcs: number
  allocated: number
}
const gcTallies = new Map<number, GcTally>()

/** Counts the child's GC trace lines; resolves with the first line that matches `first` (a port), if given. */
function watchStdout(child: ChildProcess, first?: RegExp): Promise<string> {
  const tally: GcTally = { gcs: 0, allocated: 0 }
  gcTallies.set(child.pid as number, tally)
  if (child.stdout === null) throw new Error('no stdout')
  const lines = createInterface({ input: child.stdout })
  let found: (line: string) => void = () => {}
  const firstSeen = new Promise<string>((resolve) => {
    found = resolve
  })
  lines.on('line', (line) => {
    if (first?.test(line)) found(line)
    const m = / gc=\S+ .* allocated=(\d+) /.exec(line)
    if (m === null) return
    tally.gcs++
    tally.allocated += Number(m[1])
  })
  return firstSeen
}

interface Proc {
  pid: number
  child: ChildProcess
}

async function sidecar(
  name: string,
  root: string,
  yaml: string,
): Promise<Proc & { started: Record<string, unknown> }> {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, yaml)
  const main = join(root, 'sidecar', 'src', 'cli', 'main.ts')
  const child = pinned(PROXY_CORE, process.execPath, [
    '--conditions=svidecar-source',
    ...nodeFlags(name),
    main,
    'run',
    '--config',
    file,
  ])
  const started = await sidecarStarted(child, name)
  void watchStdout(child)
  for (let i = 0; ; i++) {
    if ((await fetch(`http://${started.admin}/readyz`).catch(() => undefined))?.status === 200) break
    if (i === 200) throw new Error(`${name} did not become ready`)
    await sleep(50)
  }
  return { pid: child.pid as number, child, started }
}

async function minimalProxy(
  name: string,
  listen: 'inbound' | 'outbound',
  upstream: string,
  svid: { keyPem: string; certChainPem: string },
  /** node:http instead of undici (bench/minimal-http-proxy.ts). */
  mode?: 'pool' | 'affine',
): Promise<Proc & { port: number }> {
  const tls = { key: svid.keyPem, cert: svid.certChainPem, ca: api.bundlePem() }
  const child = pinned(PROXY_CORE, process.execPath, [
    ...nodeFlags(name),
    ...floorArgv({ listen, upstream, tls, ...(mode === undefined ? {} : { mode }) }),
  ])
  const port = Number(await watchStdout(child, /^\d+$/))
  return { pid: child.pid as number, child, port }
}

async function nginx(
  name: string,
  core: number,
  server: string,
  upstreamPort: number,
): Promise<Proc & { port: number }> {
  const { child, pid, port } = await startNginx({
    dir,
    name,
    spawn: (cmd, args) => pinned(core, cmd, args),
    server,
    upstreamPort,
  })
  return { pid, child, port }
}

interface Run {
  ok: number
  failed: number
  cpuMs: number
  gcs: number
  allocated: number
}

async function fortio(url: string, mtls: boolean, n: number, watch: number[]): Promise<Run> {
  const out = join(dir, 'fortio.json')
  const cpu0 = watch.map(cpuMs)
  const gc0 = watch.map((pid) => ({ ...(gcTallies.get(pid) ?? { gcs: 0, allocated: 0 }) }))
  const child = pinned(REST_CORE, fortioPath, [
    'load',
    '-qps',
    '0',
    '-c',
    String(CONNECTIONS),
    '-n',
    String(n),
    '-payload-size',
    '1024',
    '-content-type',
    'application/json',
    '-json',
    out,
    '-quiet',
    ...(mtls ? ['-cert', files.agentCert, '-key', files.agentKey, '-k'] : []),
    url,
  ])
  let err = ''
  child.stderr?.on('data', (d) => {
    if (err.length < 65_536) err += d
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  if (code !== 0) throw new Error(`fortio exited with ${code}:\n${err}`)
  // Let the last trace lines of the window arrive.
  if (GC) await sleep(200)
  const cpu = watch.reduce((sum, pid, i) => sum + cpuMs(pid) - (cpu0[i] as number), 0)
  const gc = watch.reduce(
    (sum, pid, i) => {
      const t = gcTallies.get(pid) ?? { gcs: 0, allocated: 0 }
      const t0 = gc0[i] as GcTally
      return { gcs: sum.gcs + t.gcs - t0.gcs, allocated: sum.allocated + t.allocated - t0.allocated }
    },
    { gcs: 0, allocated: 0 },
  )
  const r = JSON.parse(readFileSync(out, 'utf8')) as {
    RetCodes: Record<string, number>
    DurationHistogram: { Count: number }
  }
  const ok = r.RetCodes['200'] ?? 0
  return { ok, failed: r.DurationHistogram.Count - ok, cpuMs: cpu, ...gc }
}

// ---- set-up ------------------------------------------------------------------------------------------------
const fortioPath = await ensureFortio()
const { api, files, pem } = await benchPki(dir, AGENT, MCP)
const appChild = pinned(REST_CORE, process.execPath, [join(here, 'app.ts'), '0'])
const appPort = Number(await firstLine(appChild, /^\d+$/))

const terminateMtls = `
    ssl_certificate ${files.mcpCert};
    ssl_certificate_key ${files.mcpKey};
    ssl_client_certificate ${files.bundle};
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    location / { proxy_pass http://next; proxy_http_version 1.1; proxy_set_header Connection ""; }`
const nginxUpstream = await nginx('nginx-upstream', REST_CORE, terminateMtls, appPort)

/** An inbound and an outbound svidecar from one source tree; the outbound sends /two to the inbound. */
async function svidecarPair(label: string, root: string) {
  const inbound = await sidecar(`${label}-in`, root, inboundConfig(api.endpoint, appPort, AGENT))
  const inboundAddr = (inbound.started.inbound as Record<string, string>).mcp as string
  const outbound = await sidecar(
    `${label}-out`,
    root,
    outboundConfig(api.endpoint, inboundAddr, MCP, nginxUpstream.port),
  )
  const outboundAddr = (outbound.started.outbound as Record<string, string>).egress as string
  return { inbound, inboundAddr, outbound, outboundAddr }
}

const repoRoot = resolve(here, '..')
const current = await svidecarPair('svidecar', repoRoot)
const baselines: { label: string; pair: Awaited<ReturnType<typeof svidecarPair>> }[] = []
for (const b of BASELINES) baselines.push({ label: b.label, pair: await svidecarPair(b.label, b.root) })
const agentSvid = api.currentSvid(AGENT)
const mcpSvid = api.currentSvid(MCP)
if (!agentSvid || !mcpSvid) throw new Error('dev Workload API issued no SVIDs')
files.agentCert = pem('agent.pem', agentSvid.certChainPem)
files.agentKey = pem('agent.key', agentSvid.keyPem)

const minimalIn = await minimalProxy('minimal-in', 'inbound', `http://127.0.0.1:${appPort}`, mcpSvid)
const minimalOut = await minimalProxy(
  'minimal-out',
  'outbound',
  `https://127.0.0.1:${nginxUpstream.port}`,
  agentSvid,
)
const minimalIn2 = await minimalProxy('minimal-in2', 'inbound', `http://127.0.0.1:${appPort}`, mcpSvid)
const minimalOut2 = await minimalProxy(
  'minimal-out2',
  'outbound',
  `https://127.0.0.1:${minimalIn2.port}`,
  agentSvid,
)
/** The node:http floors: inbound, outbound and a two-hop pair of each mode. */
async function httpFloors(mode: 'pool' | 'affine', svids: { agent: typeof agentSvid; mcp: typeof mcpSvid }) {
  const a = svids.agent as NonNullable<typeof agentSvid>
  const m = svids.mcp as NonNullable<typeof mcpSvid>
  const inbound = await minimalProxy(`http-${mode}-in`, 'inbound', `http://127.0.0.1:${appPort}`, m, mode)
  const outbound = await minimalProxy(
    `http-${mode}-out`,
    'outbound',
    `https://127.0.0.1:${nginxUpstream.port}`,
    a,
    mode,
  )
  const inbound2 = await minimalProxy(`http-${mode}-in2`, 'inbound', `http://127.0.0.1:${appPort}`, m, mode)
  const outbound2 = await minimalProxy(
    `http-${mode}-out2`,
    'outbound',
    `https://127.0.0.1:${inbound2.port}`,
    a,
    mode,
  )
  const name =
    mode === 'pool' ? 'node:http pooled' : 'node:http, one upstream connection per client connection'
  return [
    {
      group: 'inbound',
      name,
      url: `https://127.0.0.1:${inbound.port}/x`,
      mtls: true,
      watch: [inbound.pid],
      node: true,
    },
    {
      group: 'outbound',
      name,
      url: `http://127.0.0.1:${outbound.port}/x`,
      mtls: false,
      watch: [outbound.pid],
      node: true,
    },
    {
      group: 'two',
      name,
      url: `http://127.0.0.1:${outbound2.port}/two`,
      mtls: false,
      watch: [outbound2.pid, inbound2.pid],
      node: true,
    },
  ] as const
}
const alternatives = ALT
  ? [
      ...(await httpFloors('pool', { agent: agentSvid, mcp: mcpSvid })),
      ...(await httpFloors('affine', { agent: agentSvid, mcp: mcpSvid })),
    ]
  : []
const nginxIn = await nginx('nginx-in', PROXY_CORE, terminateMtls, appPort)
const originate = (upstream: string) => `
    location / {
      proxy_pass https://${upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate ${files.agentCert};
      proxy_ssl_certificate_key ${files.agentKey};
      proxy_ssl_trusted_certificate ${files.bundle};
      proxy_ssl_verify on;
      proxy_ssl_name mcp.bench;
      proxy_ssl_session_reuse on;
    }`
const nginxOut = await nginx('nginx-out', PROXY_CORE, originate('next'), nginxUpstream.port)
const nginxOut2 = await nginx('nginx-out2', PROXY_CORE, originate('next'), nginxIn.port)

// ---- cells -----------------------------------------------------------------------------------------------------
interface Cell {
  group: 'inbound' | 'outbound' | 'two'
  name: string
  url: string
  mtls: boolean
  watch: number[]
  node: boolean
}
const svidecarCells = (label: string, p: Awaited<ReturnType<typeof svidecarPair>>): Cell[] => [
  {
    group: 'inbound',
    name: label,
    url: `https://${p.inboundAddr}/x`,
    mtls: true,
    watch: [p.inbound.pid],
    node: true,
  },
  {
    group: 'outbound',
    name: label,
    url: `http://${p.outboundAddr}/x`,
    mtls: false,
    watch: [p.outbound.pid],
    node: true,
  },
  {
    group: 'two',
    name: label,
    url: `http://${p.outboundAddr}/two`,
    mtls: false,
    watch: [p.outbound.pid, p.inbound.pid],
    node: true,
  },
]
const all: Cell[] = [
  ...svidecarCells('svidecar', current),
  ...baselines.flatMap((b) => svidecarCells(`svidecar (${b.label})`, b.pair)),
  {
    group: 'inbound',
    name: 'minimal undici proxy',
    url: `https://127.0.0.1:${minimalIn.port}/x`,
    mtls: true,
    watch: [minimalIn.pid],
    node: true,
  },
  {
    group: 'outbound',
    name: 'minimal undici proxy',
    url: `http://127.0.0.1:${minimalOut.port}/x`,
    mtls: false,
    watch: [minimalOut.pid],
    node: true,
  },
  {
    group: 'two',
    name: 'minimal undici proxy',
    url: `http://127.0.0.1:${minimalOut2.port}/two`,
    mtls: false,
    watch: [minimalOut2.pid, minimalIn2.pid],
    node: true,
  },
  ...alternatives.map((c) => ({ ...c, watch: [...c.watch] })),
  {
    group: 'inbound',
    name: 'nginx',
    url: `https://127.0.0.1:${nginxIn.port}/x`,
    mtls: true,
    watch: [nginxIn.pid],
    node: false,
  },
  {
    group: 'outbound',
    name: 'nginx',
    url: `http://127.0.0.1:${nginxOut.port}/x`,
    mtls: false,
    watch: [nginxOut.pid],
    node: false,
  },
  {
    group: 'two',
    name: 'nginx',
    url: `http://127.0.0.1:${nginxOut2.port}/two`,
    mtls: false,
    watch: [nginxOut2.pid, nginxIn.pid],
    node: false,
  },
]
const cells = all.filter((c) => ONLY === undefined || ONLY.includes(c.group))
const groups = (['inbound', 'outbound', 'two'] as const).map((g) => cells.filter((c) => c.group === g))

const runs = new Map<Cell, Run[]>()
const loads: number[] = []
for (let rep = 0; rep < REPS; rep++) {
  loads.push(loadavg()[0] as number)
  for (const group of groups) {
    for (const cell of rep % 2 === 0 ? group : [...group].reverse()) {
      await fortio(cell.url, cell.mtls, WARMUP, cell.watch)
      const r = await fortio(cell.url, cell.mtls, REQUESTS, cell.watch)
      runs.set(cell, [...(runs.get(cell) ?? []), r])
      process.stderr.write(
        `rep ${rep + 1}/${REPS} ${cell.group}: ${cell.name}: ${((1000 * r.cpuMs) / r.ok).toFixed(1)} µs/req` +
          `${GC && cell.node ? `, ${(r.allocated / r.ok).toFixed(0)} B/req, ${((1000 * r.gcs) / r.ok).toFixed(1)} GCs/1k` : ''}` +
          `${r.failed ? `, ${r.failed} failed` : ''}\n`,
      )
    }
  }
}
loads.push(loadavg()[0] as number)

// ---- report ----------------------------------------------------------------------------------------------------
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const span = (xs: number[], d: number) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`
const groupName = { inbound: 'inbound', outbound: 'outbound', two: 'two hops (both proxies)' }
const nginxV = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim().replace('nginx version: ', '')
const lines = [
  `node ${process.version}, ${nginxV}, ${cpus()[0]?.model ?? ''} × ${cpus().length}, Linux ${release()}; ` +
    `${REPS} repetitions × ${REQUESTS} requests (after ${WARMUP} warm-up) on ${CONNECTIONS} connections, ` +
    `contenders interleaved; load average ${span(loads, 2)}; Node flags ${[...NODE_FLAGS, ...(GC ? ['--trace-gc-nvp'] : [])].join(' ')}; ${new Date().toISOString()}`,
  '',
  `| cell | proxy | CPU µs/req [range] | × nginx |${GC ? ' V8 bytes allocated/req | GCs per 1k req |' : ''} failed |`,
  `| --- | --- | ---: | ---: |${GC ? ' ---: | ---: |' : ''} ---: |`,
]
for (const group of groups) {
  const perReq = (c: Cell) => (runs.get(c) ?? []).map((r) => (1000 * r.cpuMs) / r.ok)
  const ng = group.find((c) => c.name === 'nginx')
  for (const c of group) {
    const rs = runs.get(c) ?? []
    const us = perReq(c)
    const ratio = ng === undefined ? '' : (median(us) / median(perReq(ng))).toFixed(2)
    const gc =
      GC && c.node
        ? ` ${median(rs.map((r) => r.allocated / r.ok)).toFixed(0)} | ${median(rs.map((r) => (1000 * r.gcs) / r.ok)).toFixed(1)} |`
        : GC
          ? ' | |'
          : ''
    lines.push(
      `| ${groupName[c.group]} | ${c.name} | ${median(us).toFixed(1)} [${span(us, 1)}] | ${ratio} |${gc} ${rs.reduce((n, r) => n + r.failed, 0)} |`,
    )
  }
}
process.stdout.write(`${lines.join('\n')}\n`)

// Profiles are written when a Node process exits on its own: ask them to stop, then wait.
if (PROF !== undefined) {
  const nodeProcs = [
    current.inbound,
    current.outbound,
    ...baselines.flatMap((b) => [b.pair.inbound, b.pair.outbound]),
    minimalIn,
    minimalOut,
    minimalIn2,
    minimalOut2,
  ]
  for (const p of nodeProcs) p?.child.kill('SIGTERM')
  await Promise.all(
    nodeProcs.map((p) => (p === undefined || p.child.exitCode !== null ? undefined : once(p.child, 'exit'))),
  )
  process.stderr.write(`profiles in ${PROF}: ${existsSync(PROF) ? 'written' : 'missing'}\n`)
}
await api.close()
process.exit(0)
