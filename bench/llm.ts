/**
 * LLM benchmark (issue 10), method in bench/RESULTS.md: the same
 * OpenAI-style chat calls, streaming and not, sent direct to a local model
 * server, through svidecar's outbound listener (LLM lens, policy, budget,
 * key injection) and through LiteLLM's proxy (one worker, no database), in
 * one run, contenders interleaved over repetitions.
 *
 * Placement on a 2-core host: the proxy under test alone on core 1; the load
 * generator (this process), the model server and the dev Workload API on
 * core 0. Open loop at BENCH_RATE requests/s (100).
 *
 * Run: `npm run bench:llm`. LiteLLM comes from a virtual environment outside
 * the repository, `~/.cache/svidecar/litellm-venv` (BENCH_LITELLM_VENV);
 * `bench/litellm-setup.sh` creates it. BENCH_SECONDS (30), BENCH_WARMUP (5),
 * BENCH_REPS (5), BENCH_RATE (100), BENCH_ONLY=direct,floor,svidecar,litellm.
 *
 * `floor` is the Node floor: bench/minimal-proxy.ts (a plain undici proxy
 * with no checks) in svidecar's place. What it adds over direct is what any
 * Node hop costs on this host; svidecar's LLM features are the difference
 * between it and svidecar.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, homedir, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { imageNodeFlags } from '../test/harness/image.ts'
import { startFloor } from './floor.ts'
import { startLlmSidecar, startModelServer, startWorkloadApi } from './llm-sidecar.ts'
import { openLoop, percentile } from './open-loop.ts'
import { cpuMs, pinned, processTree, rssMb, sleep } from './procs.ts'

const here = fileURLToPath(new URL('.', import.meta.url))
const bin = join(here, '..', 'sidecar', 'dist', 'cli', 'main.js')
// The method's windows (../shared/reference/performance.md §3): 5 s warm-up, 30 s measured, 5 repetitions.
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5)
const REPS = Number(process.env.BENCH_REPS ?? 5)
const RATE = Number(process.env.BENCH_RATE ?? 100)
const ONLY = process.env.BENCH_ONLY?.split(',')
const VENV = process.env.BENCH_LITELLM_VENV ?? join(homedir(), '.cache', 'svidecar', 'litellm-venv')
// The sidecar starts as the image starts it (its ENTRYPOINT's Node flags), unless BENCH_NODE_FLAGS says otherwise.
const NODE_FLAGS =
  process.env.BENCH_NODE_FLAGS === undefined
    ? imageNodeFlags()
    : process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean)
const PROXY_CORE = 1
const REST_CORE = 0
const TOKENS = 20
const INTERVAL_MS = 2
const LITELLM_MASTER_KEY = `sk-bench-${Math.random().toString(36).slice(2)}`
const dir = mkdtempSync(join(tmpdir(), 'svidecar-bench-llm-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
spawnSync('taskset', ['-pc', String(REST_CORE), String(process.pid)])

interface Target {
  name: string
  /** Origin the load generator sends to. */
  origin: string
  /** Path prefix of the OpenAI API at that origin. */
  prefix: string
  /** Processes whose CPU and memory are the contender's cost. */
  pids: () => number[]
  /** What the agent sends as its credential (svidecar strips it; LiteLLM checks its master key). */
  authorization: string
}

interface Sample {
  /** Milliseconds from the scheduled send to the end of the response. */
  total: number
  /** Milliseconds from the scheduled send to the first content token (streaming only). */
  ttft?: number
}

const CHAT = {
  model: 'gpt-4o',
  messages: [{ role: 'user', content: 'Say hello in twenty tokens.'.padEnd(900, ' .') }],
  max_tokens: 64,
}

async function one(pool: Pool, target: Target, stream: boolean, scheduled: number): Promise<Sample> {
  const res = await pool.request({
    method: 'POST',
    path: `${target.prefix}/chat/completions`,
    headers: { 'content-type': 'application/json', authorization: target.authorization },
    body: JSON.stringify(stream ? { ...CHAT, stream: true } : CHAT),
  })
  if (res.statusCode !== 200) {
    const text = await res.body.text()
    throw new Error(`${target.name}: ${res.statusCode} ${text.slice(0, 300)}`)
  }
  let ttft: number | undefined
  for await (const chunk of res.body) {
    if (ttft === undefined && stream && (chunk as Buffer).includes('tok'))
      ttft = performance.now() - scheduled
  }
  const total = performance.now() - scheduled
  return ttft === undefined ? { total } : { total, ttft }
}

/** Open loop: sends at RATE/s for `seconds` whatever the answers do, and waits for the last answer. */
async function load(target: Target, stream: boolean, seconds: number): Promise<Sample[]> {
  const pool = new Pool(target.origin, { connections: 256, pipelining: 1 })
  const samples = await openLoop({ rate: RATE, seconds, name: target.name }, (at) =>
    one(pool, target, stream, at),
  )
  await pool.close()
  return samples
}

interface Cell {
  p50: number
  p99: number
  ttft50?: number
  ttft99?: number
  cpuMsPer100: number
  rssMb: number
  ok: number
}

async function measure(target: Target, stream: boolean): Promise<Cell> {
  await load(target, stream, WARMUP)
  const pids = target.pids()
  const cpu0 = pids.reduce((s, p) => s + cpuMs(p), 0)
  const t0 = performance.now()
  const samples = await load(target, stream, SECONDS)
  // The window ends with the last answer: a contender that fell behind worked longer than SECONDS.
  const wallS = (performance.now() - t0) / 1000
  const cpu = pids.reduce((s, p) => s + cpuMs(p), 0) - cpu0
  const totals = samples.map((s) => s.total)
  const ttfts = samples.flatMap((s) => (s.ttft === undefined ? [] : [s.ttft]))
  return {
    p50: percentile(totals, 50),
    p99: percentile(totals, 99),
    ...(stream ? { ttft50: percentile(ttfts, 50), ttft99: percentile(ttfts, 99) } : {}),
    // CPU per second of the window, scaled to 100 requests/s.
    cpuMsPer100: (cpu / wallS) * (100 / RATE),
    rssMb: pids.reduce((s, p) => s + rssMb(p), 0),
    ok: samples.length,
  }
}

async function waitHttp(url: string, what: () => string, tries = 1200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    const status = (await fetch(url).catch(() => undefined))?.status
    if (status !== undefined && status < 500) return
    await sleep(100)
  }
  throw new Error(`${what()} did not answer ${url}`)
}

async function startLiteLlm(upstreamPort: number): Promise<Target> {
  const litellm = join(VENV, 'bin', 'litellm')
  if (!existsSync(litellm)) throw new Error(`no LiteLLM at ${litellm}: run bench/litellm-setup.sh`)
  const config = join(dir, 'litellm.yaml')
  writeFileSync(
    config,
    `model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:${upstreamPort}/v1
      api_key: sk-bench-provider-key
general_settings:
  # LiteLLM refuses to start without one; with no database it is the one key it checks.
  master_key: ${LITELLM_MASTER_KEY}
litellm_settings:
  telemetry: false
`,
  )
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  const child = pinned(
    PROXY_CORE,
    litellm,
    ['--config', config, '--host', '127.0.0.1', '--port', String(port), '--num_workers', '1'],
    {
      ...process.env,
      LITELLM_LOG: 'ERROR',
      LITELLM_TELEMETRY: 'False',
      DISABLE_SCHEMA_UPDATE: 'true',
      // Its model price map from the package, not fetched from GitHub at start: this host has no internet, and a
      // fetch whose packets are dropped held the start past the bench's two minutes.
      LITELLM_LOCAL_MODEL_COST_MAP: 'True',
    },
  )
  let log = ''
  child.stderr?.on('data', (d) => {
    if (log.length < 65_536) log += d
  })
  child.stdout?.resume()
  await waitHttp(`http://127.0.0.1:${port}/health/liveliness`, () => `LiteLLM (${log.slice(-2000)})`)
  const pid = child.pid as number
  return {
    name: 'litellm',
    origin: `http://127.0.0.1:${port}`,
    prefix: '/v1',
    pids: () => processTree(pid),
    authorization: `Bearer ${LITELLM_MASTER_KEY}`,
  }
}

async function startNodeFloor(upstreamPort: number): Promise<Target> {
  const floor = await startFloor(PROXY_CORE, NODE_FLAGS, {
    listen: 'outbound',
    upstream: `http://127.0.0.1:${upstreamPort}`,
  })
  return {
    name: 'floor',
    origin: `http://127.0.0.1:${floor.port}`,
    prefix: '/v1',
    pids: () => [floor.pid],
    // Passed through as it is: the model server sees what the direct call sends.
    authorization: 'Bearer sk-bench-provider-key',
  }
}

async function startSvidecar(upstreamPort: number): Promise<Target> {
  const started = await startLlmSidecar({
    dir,
    core: PROXY_CORE,
    nodeFlags: NODE_FLAGS,
    entry: bin,
    socket: await startWorkloadApi(),
    upstreamPort,
  })
  await waitHttp(`http://${started.admin}/readyz`, () => 'svidecar')
  return {
    name: 'svidecar',
    origin: `http://${started.egress}`,
    prefix: '/v1',
    pids: () => [started.pid],
    authorization: 'Bearer sk-the-agent-holds-no-real-key',
  }
}

const upstreamPort = await startModelServer(REST_CORE, { tokens: TOKENS, intervalMs: INTERVAL_MS })
const direct: Target = {
  name: 'direct',
  origin: `http://127.0.0.1:${upstreamPort}`,
  prefix: '/v1',
  pids: () => [],
  authorization: 'Bearer sk-bench-provider-key',
}
const targets: Target[] = [direct]
if (ONLY === undefined || ONLY.includes('floor')) targets.push(await startNodeFloor(upstreamPort))
if (ONLY === undefined || ONLY.includes('svidecar')) targets.push(await startSvidecar(upstreamPort))
if (ONLY === undefined || ONLY.includes('litellm')) targets.push(await startLiteLlm(upstreamPort))

type Results = Record<string, Record<'chat' | 'stream', Cell[]>>
const results: Results = {}
for (let rep = 0; rep < REPS; rep++) {
  // Interleaved, order flipped each repetition, so drift in the host hits every contender alike.
  const order = rep % 2 === 0 ? targets : [...targets].reverse()
  for (const t of order) {
    for (const stream of [false, true]) {
      const cell = await measure(t, stream)
      results[t.name] ??= { chat: [], stream: [] }
      const slot = results[t.name] as Record<'chat' | 'stream', Cell[]>
      slot[stream ? 'stream' : 'chat'].push(cell)
      process.stderr.write(
        `rep ${rep + 1} ${t.name} ${stream ? 'stream' : 'chat'}: ${JSON.stringify(cell)}\n`,
      )
    }
  }
}

function median(cells: Cell[], key: keyof Cell): number {
  return percentile(
    cells.map((c) => c[key] as number),
    50,
  )
}

const fmt = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : 'n/a')
const lines: string[] = []
lines.push(
  `node ${process.version}, ${cpus()[0]?.model ?? ''} (${cpus().length} cores), kernel ${release()}, ${new Date().toISOString().slice(0, 10)}`,
)
lines.push(
  `${RATE} requests/s open loop, ${SECONDS} s × ${REPS} (medians), ${TOKENS}-token replies, streams ${INTERVAL_MS} ms between events`,
)
lines.push('')
lines.push(
  '| contender | call | added p50 ms | added p99 ms | added TTFT p50 ms | added TTFT p99 ms | CPU ms/s per 100 req/s | RSS MB |',
)
lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |')
const base = results.direct
for (const t of targets) {
  if (t.name === 'direct' || base === undefined) continue
  for (const call of ['chat', 'stream'] as const) {
    const cells = results[t.name]?.[call] ?? []
    const b = base[call]
    const row = [
      t.name === 'floor' ? 'Node floor (minimal undici proxy)' : t.name,
      call === 'chat' ? 'chat, JSON' : 'chat, SSE stream',
      fmt(median(cells, 'p50') - median(b, 'p50')),
      fmt(median(cells, 'p99') - median(b, 'p99')),
      call === 'stream' ? fmt(median(cells, 'ttft50') - median(b, 'ttft50')) : '',
      call === 'stream' ? fmt(median(cells, 'ttft99') - median(b, 'ttft99')) : '',
      fmt(median(cells, 'cpuMsPer100')),
      fmt(median(cells, 'rssMb')),
    ]
    lines.push(`| ${row.join(' | ')} |`)
  }
}
const outDir = join(here, 'results')
writeFileSync(
  join(outDir, 'llm.json'),
  `${JSON.stringify({ rate: RATE, seconds: SECONDS, results }, null, 2)}\n`,
)
process.stdout.write(`${lines.join('\n')}\n`)
process.exit(0)
