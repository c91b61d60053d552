/**
 * CPU per LLM call in svidecar (issue 10's per-call cost), method in
 * bench/RESULTS.md: the sidecar as `bench/llm.ts` starts it, a fixed number
 * of OpenAI-style chat calls (JSON, then SSE streams) sent open loop at a
 * fixed rate, and the sidecar process's CPU time (utime + stime from /proc)
 * over those calls divided by their number. Latency is not measured here: on
 * a shared host it is noise; CPU per call is what moves it.
 *
 * Several builds of the sidecar can run side by side (BENCH_VARIANTS:
 * `name=path/to/src/cli/main.ts,...`, default this checkout's sources), each
 * its own process on the same core, interleaved cell by cell and the order
 * flipped each repetition; medians of the repetitions.
 *
 * Run: `node --conditions=svidecar-source bench/llm-cpu.ts`. BENCH_RATE (100),
 * BENCH_JSON_CALLS (1000), BENCH_STREAM_CALLS (500), BENCH_WARMUP_CALLS (300),
 * BENCH_WARMUP_RATE (BENCH_RATE),
 * BENCH_REPS (5), BENCH_KINDS (json,stream), BENCH_NODE_FLAGS (added to the
 * image's; e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`: the sidecars are
 * stopped with SIGTERM at the end, so profiles get written).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { imageNodeFlags } from '../test/harness/image.ts'
import { type StartedSidecar, startLlmSidecar, startModelServer, startWorkloadApi } from './llm-sidecar.ts'
import { openLoop, percentile } from './open-loop.ts'
import { cpuMs, rssMb } from './procs.ts'

const here = fileURLToPath(new URL('.', import.meta.url))
const RATE = Number(process.env.BENCH_RATE ?? 100)
const CALLS = {
  json: Number(process.env.BENCH_JSON_CALLS ?? 1000),
  stream: Number(process.env.BENCH_STREAM_CALLS ?? 500),
}
const WARMUP = Number(process.env.BENCH_WARMUP_CALLS ?? 300)
const WARMUP_RATE = Number(process.env.BENCH_WARMUP_RATE ?? RATE)
const REPS = Number(process.env.BENCH_REPS ?? 5)
const KINDS = (process.env.BENCH_KINDS ?? 'json,stream').split(',') as Kind[]
const EXTRA_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)
const VARIANTS = (
  process.env.BENCH_VARIANTS ?? `current=${join(here, '..', 'sidecar', 'src', 'cli', 'main.ts')}`
)
  .split(',')
  .map((v) => {
    const [name, entry] = v.split('=') as [string, string]
    return { name, entry }
  })
const PROXY_CORE = 1
const REST_CORE = 0
const TOKENS = 20
const INTERVAL_MS = 2

type Kind = 'json' | 'stream'

const CHAT = {
  model: 'gpt-4o',
  messages: [{ role: 'user', content: 'Say hello in twenty tokens.'.padEnd(900, ' .') }],
  max_tokens: 64,
}
const BODY = { json: JSON.stringify(CHAT), stream: JSON.stringify({ ...CHAT, stream: true }) }

const dir = mkdtempSync(join(tmpdir(), 'svidecar-bench-llm-cpu-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))

// Calls that failed (counted, not hidden: the CPU per call is over all calls sent).
const failures: Record<string, number> = {}

async function calls(pool: Pool, kind: Kind, n: number, name: string, rate = RATE): Promise<void> {
  const done = await openLoop({ rate, seconds: n / rate, name: kind }, async () => {
    const res = await pool.request({
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-the-agent-holds-no-real-key' },
      body: BODY[kind],
    })
    const text = await res.body.text()
    if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${text.slice(0, 300)}`)
    return true
  })
  failures[name] = (failures[name] ?? 0) + n - done.length
  // A few resets under a busy host's load are the upstream's; more would make the figure meaningless.
  if (done.length < n * 0.95) throw new Error(`${n - done.length} of ${n} ${kind} calls failed`)
}

interface Running {
  name: string
  sidecar: StartedSidecar
  pool: Pool
  rssStart: number
}

const upstreamPort = await startModelServer(REST_CORE, { tokens: TOKENS, intervalMs: INTERVAL_MS })
const socket = await startWorkloadApi()
const running: Running[] = []
for (const v of VARIANTS) {
  const vdir = join(dir, v.name)
  mkdirSync(vdir)
  const sidecar = await startLlmSidecar({
    dir: vdir,
    core: PROXY_CORE,
    nodeFlags: ['--conditions=svidecar-source', ...imageNodeFlags(), ...EXTRA_FLAGS],
    entry: v.entry,
    socket,
    upstreamPort,
  })
  running.push({
    name: v.name,
    sidecar,
    pool: new Pool(`http://${sidecar.egress}`, { connections: 256, pipelining: 1 }),
    rssStart: rssMb(sidecar.pid),
  })
}
for (const r of running) for (const kind of KINDS) await calls(r.pool, kind, WARMUP, r.name, WARMUP_RATE)

const results: Record<string, Record<Kind, number[]>> = {}
for (let rep = 0; rep < REPS; rep++) {
  const order = rep % 2 === 0 ? running : [...running].reverse()
  for (const kind of KINDS)
    for (const r of order) {
      const before = cpuMs(r.sidecar.pid)
      await calls(r.pool, kind, CALLS[kind], r.name)
      const perCall = (cpuMs(r.sidecar.pid) - before) / CALLS[kind]
      results[r.name] ??= { json: [], stream: [] }
      results[r.name]?.[kind].push(perCall)
      process.stderr.write(`rep ${rep + 1} ${r.name} ${kind}: ${perCall.toFixed(3)} ms CPU per call\n`)
    }
}

const lines = [
  `${RATE} calls/s open loop; ${CALLS.json} JSON / ${CALLS.stream} stream calls per cell, ${TOKENS} tokens, ${INTERVAL_MS} ms between events; median of ${REPS} (min–max)`,
  '',
  '| variant | call | CPU ms per call | RSS MB at start | RSS MB after |',
  '| --- | --- | ---: | ---: | ---: |',
]
for (const r of running)
  for (const kind of KINDS) {
    const v = results[r.name]?.[kind] ?? []
    const range = `${Math.min(...v).toFixed(3)}–${Math.max(...v).toFixed(3)}`
    lines.push(
      `| ${r.name} | ${kind} | ${percentile(v, 50).toFixed(3)} (${range}) | ${r.rssStart.toFixed(0)} | ${rssMb(r.sidecar.pid).toFixed(0)} |`,
    )
  }
lines.push('', `failed calls (warm-up included): ${JSON.stringify(failures)}`)
process.stdout.write(`${lines.join('\n')}\n`)
for (const r of running) {
  await r.pool.close()
  const exited = new Promise((resolve) => r.sidecar.child.once('exit', resolve))
  r.sidecar.child.kill('SIGTERM')
  await exited
}
process.exit(0)
