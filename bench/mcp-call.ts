/**
 * MCP call benchmark (issue 11): `tools/call` sent direct to an MCP server
 * (the official SDK over Streamable HTTP, one session, JSON answers) and
 * through two sidecars (the agent's outbound listener with the MCP lens and
 * its policy, mTLS, the server's inbound listener with the MCP lens and its
 * policy), open loop at BENCH_RATE calls/s (500), contenders interleaved
 * over repetitions. Target: through two sidecars adds at most 1 ms at p99.
 *
 * BENCH_METHOD=list sends `tools/list` instead, to a server listing 1,000
 * tools (BENCH_TOOLS) of which the agent may see half: both sidecars filter
 * every answer, as deployed (audit lines, metrics), at BENCH_RATE (50) lists/s.
 *
 * Placement on a 2-core host (BENCH_PLACEMENT): `pods` (the default) puts
 * each sidecar beside its own workload, as in two pods: the load generator
 * (the agent) and the agent's sidecar on core 0, the MCP server and its
 * sidecar on core 1. `shared` puts both sidecars on core 1 and the rest on
 * core 0 (what this bench did before 2026-11-30).
 *
 * Run: `npm run bench:mcp-call` (the sidecars run
 * from the sources). BENCH_SECONDS (30), BENCH_WARMUP (5), BENCH_REPS (5),
 * BENCH_RATE (500; 50 for lists), BENCH_METHOD (`call` or `list`),
 * BENCH_TOOLS (1000 for lists), BENCH_PLACEMENT (`pods` or `shared`),
 * BENCH_NODE_FLAGS (the sidecars' Node flags instead of the image's),
 * BENCH_ONLY (direct,floor,sidecars).
 *
 * `floor` is the Node floor in the sidecars' places: two of
 * bench/minimal-proxy.ts (plain undici proxies with no checks, mTLS between
 * them, the same SVIDs). What the pair adds over direct is what two Node hops
 * cost on this host; the sidecars' features are the difference above it.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DevCa, DevWorkloadApi } from '@svidecar/certs'
import { Pool } from 'undici'
import { imageNodeFlags } from '../test/harness/image.ts'
import { startFloor } from './floor.ts'
import { openLoop, percentile } from './open-loop.ts'
import { cpuMs, firstLine, pinned, sidecarStarted, sleep } from './procs.ts'

const here = fileURLToPath(new URL('.', import.meta.url))
const main = join(here, '..', 'sidecar', 'src', 'cli', 'main.ts')
// The method's windows (../shared/reference/performance.md §3): 5 s warm-up, 30 s measured, 5 repetitions.
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5)
const REPS = Number(process.env.BENCH_REPS ?? 5)
const LIST = process.env.BENCH_METHOD === 'list'
const RATE = Number(process.env.BENCH_RATE ?? (LIST ? 50 : 500))
const TOOLS = Number(process.env.BENCH_TOOLS ?? (LIST ? 1000 : 0))
// The sidecars start as the image starts them (its ENTRYPOINT's Node flags), unless BENCH_NODE_FLAGS says otherwise.
const NODE_FLAGS =
  process.env.BENCH_NODE_FLAGS === undefined
    ? imageNodeFlags()
    : process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean)
const PODS = (process.env.BENCH_PLACEMENT ?? 'pods') === 'pods'
const PROXY_CORE = 1
const REST_CORE = 0
const AGENT_SIDECAR_CORE = PODS ? 0 : PROXY_CORE
const SERVER_CORE = PODS ? 1 : REST_CORE
const AGENT = 'spiffe://example.org/bench/agent'
const SERVER = 'spiffe://example.org/bench/mcp'
const VERSION = '2025-11-25'
const dir = mkdtempSync(join(tmpdir(), 'svidecar-bench-mcp-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
spawnSync('taskset', ['-pc', String(REST_CORE), String(process.pid)])

interface Target {
  name: string
  origin: string
  pids: number[]
  session?: string
}

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }

async function initialize(pool: Pool): Promise<string> {
  const res = await pool.request({
    method: 'POST',
    path: '/mcp',
    headers: HEADERS,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
    }),
  })
  await res.body.text()
  const sid = res.headers['mcp-session-id']
  if (res.statusCode !== 200 || typeof sid !== 'string') throw new Error(`initialize: ${res.statusCode}`)
  const note = await pool.request({
    method: 'POST',
    path: '/mcp',
    headers: { ...HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': VERSION },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  })
  await note.body.dump()
  return sid
}

let nextId = 1
async function call(pool: Pool, t: Target, scheduled: number): Promise<number> {
  const res = await pool.request({
    method: 'POST',
    path: '/mcp',
    headers: { ...HEADERS, 'mcp-session-id': t.session as string, 'mcp-protocol-version': VERSION },
    body: JSON.stringify(
      LIST
        ? { jsonrpc: '2.0', id: nextId++, method: 'tools/list' }
        : { jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name: 'echo', arguments: {} } },
    ),
  })
  const text = await res.body.text()
  if (res.statusCode !== 200 || !text.includes(LIST ? '"tool_0_998"' : '"ok"'))
    throw new Error(`${t.name}: ${res.statusCode} ${text}`)
  return performance.now() - scheduled
}

/** Open loop: sends at RATE/s for `seconds` whatever the answers do, and waits for the last answer. */
async function load(t: Target, seconds: number): Promise<number[]> {
  const pool = new Pool(t.origin, { connections: 256, pipelining: 1 })
  t.session ??= await initialize(pool)
  const out = await openLoop({ rate: RATE, seconds, name: t.name }, (at) => call(pool, t, at))
  await pool.close()
  return out
}

interface Cell {
  p50: number
  p99: number
  cpuMsPerS: number
  ok: number
}

async function measure(t: Target): Promise<Cell> {
  await load(t, WARMUP)
  const cpu0 = t.pids.reduce((s, p) => s + cpuMs(p), 0)
  const t0 = performance.now()
  const samples = await load(t, SECONDS)
  const wallS = (performance.now() - t0) / 1000
  const cpu = t.pids.reduce((s, p) => s + cpuMs(p), 0) - cpu0
  return {
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    cpuMsPerS: cpu / wallS,
    ok: samples.length,
  }
}

async function startSidecar(
  name: string,
  core: number,
  config: string,
): Promise<{ pid: number; started: Record<string, unknown> }> {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, config)
  const child = pinned(core, process.execPath, [
    ...NODE_FLAGS,
    '--conditions=svidecar-source',
    main,
    'run',
    '--config',
    file,
  ])
  child.stdout?.resume()
  return { pid: child.pid as number, started: await sidecarStarted(child, `${name} sidecar`, 20_000) }
}

const policy = join(dir, 'policy.yaml')
writeFileSync(
  policy,
  `version: 1
rules:
  - id: bench-agent-echo
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }]
  - id: bench-agent-half
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: "tool_0_*" }]
`,
)

const upstream = pinned(SERVER_CORE, process.execPath, [join(here, 'mcp-upstream-main.ts')], {
  ...process.env,
  BENCH_TOOLS: String(TOOLS),
})
const upstreamPort = Number(await firstLine(upstream, /^\d+$/))
const ca = DevCa.create({ trustDomain: 'example.org' })
const api = await DevWorkloadApi.start({
  ca,
  workloads: [
    { spiffeId: AGENT, hint: 'agent' },
    { spiffeId: SERVER, hint: 'mcp' },
  ],
})
const inboundPort = 20_000 + Math.floor(Math.random() * 20_000)
const server = await startSidecar(
  'server',
  PROXY_CORE,
  `workloadApi: { socket: "${api.endpoint}", hint: mcp }
admin: { address: "127.0.0.1:0" }
inbound:
  - name: public
    address: "127.0.0.1:${inboundPort}"
    forwardTo: "http://127.0.0.1:${upstreamPort}"
    authorize: { exact: "${AGENT}" }
    mcp: { paths: [/mcp] }
policy: { file: "${policy}" }
`,
)
const agent = await startSidecar(
  'agent',
  AGENT_SIDECAR_CORE,
  `workloadApi: { socket: "${api.endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: mcp }]
    mcp: { paths: [/mcp] }
upstreams:
  mcp:
    url: "https://127.0.0.1:${inboundPort}"
    spiffe: { exact: "${SERVER}" }
policy: { file: "${policy}" }
`,
)
const egress = (agent.started.outbound as Record<string, string>).egress
const sidecars: Target = { name: 'two sidecars', origin: `http://${egress}`, pids: [agent.pid, server.pid] }
// The sidecars become ready once their SVIDs arrive: wait for a call to go through.
for (let i = 0; ; i++) {
  try {
    const pool = new Pool(sidecars.origin)
    await initialize(pool)
    await pool.close()
    break
  } catch (err) {
    if (i > 100) throw err
    await sleep(100)
  }
}

/** Two minimal undici proxies placed as the sidecars are, with the SVIDs the dev Workload API gave them. */
async function nodeFloor(): Promise<Target> {
  const svid = (id: string) => {
    const s = api.currentSvid(id)
    if (s === undefined) throw new Error(`dev Workload API issued no SVID for ${id}`)
    return { key: s.keyPem, cert: s.certChainPem, ca: api.bundlePem() }
  }
  const inbound = await startFloor(PROXY_CORE, NODE_FLAGS, {
    listen: 'inbound',
    upstream: `http://127.0.0.1:${upstreamPort}`,
    tls: svid(SERVER),
  })
  const outbound = await startFloor(AGENT_SIDECAR_CORE, NODE_FLAGS, {
    listen: 'outbound',
    upstream: `https://127.0.0.1:${inbound.port}`,
    tls: svid(AGENT),
  })
  return { name: 'floor', origin: `http://127.0.0.1:${outbound.port}`, pids: [outbound.pid, inbound.pid] }
}

const ONLY = process.env.BENCH_ONLY?.split(',') ?? ['direct', 'floor', 'sidecars']
const targets: Target[] = [{ name: 'direct', origin: `http://127.0.0.1:${upstreamPort}`, pids: [] }]
if (ONLY.includes('floor')) targets.push(await nodeFloor())
if (ONLY.includes('sidecars')) targets.push(sidecars)

const results: Record<string, Cell[]> = {}
for (let rep = 0; rep < REPS; rep++) {
  const order = rep % 2 === 0 ? targets : [...targets].reverse()
  for (const t of order) {
    const cell = await measure(t)
    results[t.name] ??= []
    results[t.name]?.push(cell)
    process.stderr.write(`rep ${rep + 1} ${t.name}: ${JSON.stringify(cell)}\n`)
  }
}
const median = (cells: Cell[], key: keyof Cell) =>
  percentile(
    cells.map((c) => c[key]),
    50,
  )
const fmt = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : 'n/a')
const base = results.direct ?? []
const row = (label: string, cells: Cell[]) =>
  `| ${label} | ${fmt(median(cells, 'p50'))} | ${fmt(median(cells, 'p99'))} | ${fmt(median(cells, 'p50') - median(base, 'p50'))} | ${fmt(median(cells, 'p99') - median(base, 'p99'))} | ${fmt(median(cells, 'cpuMsPerS'))} | ${fmt(median(cells, 'cpuMsPerS') / RATE)} |`
const lines = [
  `node ${process.version}, ${cpus()[0]?.model ?? ''} (${cpus().length} cores), kernel ${release()}, ${new Date().toISOString().slice(0, 10)}`,
  `${LIST ? `tools/list of ${TOOLS} tools, half of them kept,` : 'tools/call,'} ${RATE} calls/s open loop, ${SECONDS} s × ${REPS} (medians), placement: ${PODS ? 'pods (each proxy on its workload core)' : 'shared (both proxies on core 1)'}`,
  '',
  '| path | p50 ms | p99 ms | added p50 ms | added p99 ms | proxies CPU ms/s | proxies CPU ms per call |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  `| direct | ${fmt(median(base, 'p50'))} | ${fmt(median(base, 'p99'))} | | | | |`,
  ...(results.floor === undefined ? [] : [row('two minimal undici proxies (Node floor)', results.floor)]),
  ...(results['two sidecars'] === undefined ? [] : [row('two sidecars', results['two sidecars'])]),
]
process.stdout.write(`${lines.join('\n')}\n`)
await api.close()
process.exit(0)
