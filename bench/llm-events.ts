/**
 * Where svidecar's added time to first token goes (issue 10): the latency
 * each piece of an OpenAI-style chat call picks up on its way, measured with
 * one clock (CLOCK_MONOTONIC, `process.hrtime.bigint()`, the same in every
 * process on the host), so nothing is inferred from differences of
 * percentiles:
 * - request: the client's send to the model server's arrival (the request path:
 *   lens, policy, budget, key injection, undici);
 * - head: the model server's `writeHead` to the client's response head;
 * - event i: the model server's write of SSE event i to its arrival at the client
 *   (event 0 is the role chunk, event 1 the first content token, the last ones
 *   the finish chunk, usage and `[DONE]`); for a JSON call, its body.
 * The model server here has the shape of `sidecar/test/helpers/llm-upstream.ts`'s
 * chat stream (20 content chunks 2 ms apart, usage only when asked) and stamps
 * each event's write time into its `id` (`chatcmpl-<ns>`), which no meter reads.
 *
 * Targets run interleaved: `direct` (the model server itself) and one or more
 * sidecars (BENCH_VARIANTS `name=path/to/main.(js|ts),...`, default this
 * checkout's dist build; Node flags of one variant after its entry, space-separated),
 * each started as bench/llm.ts starts it (image flags,
 * core 1). Per target and piece: p50, p99, p99.9 and max over all calls, and the
 * sidecar's CPU per call.
 *
 * Run: `npm run build && node --conditions=svidecar-source bench/llm-events.ts`.
 * BENCH_RATE (20), BENCH_SECONDS (20), BENCH_REPS (3), BENCH_KINDS (stream,json),
 * BENCH_NODE_FLAGS (added to the image's; a variant run with `--trace-gc` also
 * gets its scavenge pauses reported), BENCH_FLOOR=0 (leave out the
 * Node floor, bench/floor.ts, which otherwise runs as one more target).
 */
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { imageNodeFlags } from '../test/harness/image.ts'
import { startFloor } from './floor.ts'
import { type StartedSidecar, startLlmSidecar, startWorkloadApi } from './llm-sidecar.ts'
import { openLoop, percentile } from './open-loop.ts'
import { cpuMs, firstLine, pinned } from './procs.ts'

const here = fileURLToPath(new URL('.', import.meta.url))
const TOKENS = 20
const INTERVAL_MS = 2

if (process.argv[2] === 'upstream') {
  // The model server, in its own process.
  const server = createServer((req, res) => {
    const arrived = process.hrtime.bigint()
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
      const sent = BigInt((req.headers['x-bench-sent'] as string | undefined) ?? '0')
      const reqNs = String(arrived - sent)
      const usage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true
      const model = body.model as string
      const id = () => `chatcmpl-${process.hrtime.bigint()}`
      if (body.stream !== true) {
        const content = Array.from({ length: TOKENS }, () => 'tok').join(' ')
        const wire = JSON.stringify({
          id: id(),
          object: 'chat.completion',
          created: 1_767_225_600,
          model,
          choices: [
            { index: 0, message: { role: 'assistant', content }, finish_reason: 'stop', logprobs: null },
          ],
          usage: { prompt_tokens: 11, completion_tokens: TOKENS, total_tokens: 11 + TOKENS },
        })
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(wire),
          'x-bench-req-ns': reqNs,
          'x-bench-head-sent': String(process.hrtime.bigint()),
        })
        res.end(wire)
        return
      }
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        'x-bench-req-ns': reqNs,
        'x-bench-head-sent': String(process.hrtime.bigint()),
      })
      res.flushHeaders()
      const chunk = (delta: unknown, finish: string | null) => () => ({
        id: id(),
        object: 'chat.completion.chunk',
        created: 1_767_225_600,
        model,
        choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
        ...(usage ? { usage: null } : {}),
      })
      const frames: (() => unknown)[] = [chunk({ role: 'assistant', content: '' }, null)]
      for (let i = 0; i < TOKENS; i++) frames.push(chunk({ content: i === 0 ? 'tok' : ' tok' }, null))
      frames.push(chunk({}, 'stop'))
      if (usage)
        frames.push(() => ({
          id: id(),
          object: 'chat.completion.chunk',
          created: 1_767_225_600,
          model,
          choices: [],
          usage: { prompt_tokens: 11, completion_tokens: TOKENS, total_tokens: 11 + TOKENS },
        }))
      let i = 0
      const next = () => {
        if (res.destroyed) return
        const f = frames[i++]
        if (f === undefined) {
          res.end(`data: [DONE]\n\n`)
          return
        }
        res.write(`data: ${JSON.stringify(f())}\n\n`)
        setTimeout(next, INTERVAL_MS)
      }
      setTimeout(next, INTERVAL_MS)
    })
  })
  server.keepAliveTimeout = 5_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`)
} else {
  await main()
}

/**
 * What bench/request-path-probe.ts saw in each probed process: the request path (the HTTP server's request to
 * undici's upstream head) per target and kind, and the share of paths a GC pause fell into.
 */
async function probeTable(
  targets: ReadonlyArray<{ name: string; sidecar?: { pid: number; child: StartedSidecar['child'] } }>,
  dir: string,
  probed: ReadonlyMap<string, string>,
): Promise<string[]> {
  const lines = [
    'In-process request path (request seen → upstream head written), bench/request-path-probe.ts:',
    '',
    '| target | call | n | p50 ms | p90 ms | p99 ms | max ms | paths a GC fell into | p99 of the others ms |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const t of targets) {
    if (t.sidecar === undefined) continue
    const file = join(dir, `${t.sidecar.pid}.json`)
    t.sidecar.child.kill('SIGUSR2')
    let dump: { paths: Array<[string, string, string]>; gcs: Array<[string, string]> } | undefined
    for (let i = 0; i < 100 && dump === undefined; i++) {
      await new Promise((r) => setTimeout(r, 50))
      try {
        dump = JSON.parse(readFileSync(file, 'utf8'))
      } catch {}
    }
    if (dump === undefined) throw new Error(`no probe dump from ${t.name} (${file})`)
    const gcs = dump.gcs.map(([a, b]) => [BigInt(a), BigInt(b)] as const)
    const byKey = new Map<string, { all: number[]; clean: number[]; hit: number }>()
    for (const [sent, a, b] of dump.paths) {
      const key = probed.get(sent)
      if (key === undefined) continue
      const from = BigInt(a)
      const to = BigInt(b)
      const us = Number(to - from) / 1000
      const slot = byKey.get(key) ?? { all: [], clean: [], hit: 0 }
      byKey.set(key, slot)
      slot.all.push(us)
      if (gcs.some(([s, e]) => s < to && e > from)) slot.hit++
      else slot.clean.push(us)
    }
    const f = (us: number) => (Number.isFinite(us) ? (us / 1000).toFixed(3) : 'n/a')
    for (const [key, { all, clean, hit }] of byKey)
      lines.push(
        `| ${key.replace(' ', ' | ')} | ${all.length} | ${f(percentile(all, 50))} | ${f(percentile(all, 90))} | ${f(percentile(all, 99))} | ${f(Math.max(...all))} | ${((100 * hit) / all.length).toFixed(1)} % | ${f(percentile(clean, 99))} |`,
      )
  }
  return lines
}

async function main(): Promise<void> {
  const RATE = Number(process.env.BENCH_RATE ?? 20)
  const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)
  const REPS = Number(process.env.BENCH_REPS ?? 3)
  const KINDS = (process.env.BENCH_KINDS ?? 'stream,json').split(',')
  const PROBE = process.env.BENCH_PROBE === '1'
  const FLAGS = [
    ...imageNodeFlags(),
    ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
    ...(PROBE ? [`--import=${join(here, 'request-path-probe.ts')}`] : []),
  ]
  const VARIANTS = (
    process.env.BENCH_VARIANTS ?? `svidecar=${join(here, '..', 'sidecar', 'dist', 'cli', 'main.js')}`
  )
    .split(',')
    .map((v) => {
      // name=entry, then Node flags of this variant only, space-separated.
      // Split at the first '=' only: a variant's flags may hold their own (`--max-semi-space-size=4`).
      const at = v.indexOf('=')
      const name = v.slice(0, at)
      const rest = v.slice(at + 1)
      const [entry, ...flags] = rest.split(' ').filter(Boolean) as [string, ...string[]]
      return { name, entry, flags }
    })
  const dir = mkdtempSync(join(tmpdir(), 'svidecar-bench-llm-events-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  // The probe's dumps (inherited by every process the bench starts).
  process.env.BENCH_PROBE_DIR = dir
  const upstreamChild = pinned(0, process.execPath, [
    '--conditions=svidecar-source',
    fileURLToPath(import.meta.url),
    'upstream',
  ])
  const upstreamPort = Number(await firstLine(upstreamChild, /^\d+$/))
  const socket = await startWorkloadApi()
  interface Target {
    name: string
    origin: string
    sidecar?: { pid: number; child: StartedSidecar['child'] }
  }
  const targets: Target[] = [{ name: 'direct', origin: `http://127.0.0.1:${upstreamPort}` }]
  const scavenges = new Map<string, number[]>()
  // Each variant's mark-compact lines as V8 printed them (pause, incremental steps, marking wall time).
  const majors = new Map<string, string[]>()
  if (process.env.BENCH_FLOOR !== '0') {
    // The Node floor (bench/floor.ts) in the sidecar's place: what any Node hop adds here.
    const floor = await startFloor(1, FLAGS, {
      listen: 'outbound',
      upstream: `http://127.0.0.1:${upstreamPort}`,
    })
    targets.push({ name: 'floor', origin: `http://127.0.0.1:${floor.port}`, sidecar: floor })
  }
  for (const v of VARIANTS) {
    const sidecar = await startLlmSidecar({
      dir: mkdtempSync(join(dir, `${v.name}-`)),
      core: 1,
      nodeFlags: [...FLAGS, ...v.flags, ...(v.entry.endsWith('.ts') ? ['--conditions=svidecar-source'] : [])],
      entry: v.entry,
      socket,
      upstreamPort,
    })
    targets.push({ name: v.name, origin: `http://${sidecar.egress}`, sidecar })
    // With --trace-gc among a variant's flags, V8 prints each GC on stdout (beside the audit lines): its scavenge pauses.
    if ([...FLAGS, ...v.flags].includes('--trace-gc')) {
      const pauses: number[] = []
      scavenges.set(v.name, pauses)
      const lines: string[] = []
      majors.set(v.name, lines)
      sidecar.child.stdout?.on('data', (d: Buffer) => {
        for (const m of String(d).matchAll(/Mark-Compact[^\n]*/g)) lines.push(m[0])
        for (const m of String(d).matchAll(
          /Scavenge[^\n]*?MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/g,
        ))
          pauses.push(Number(m[1]))
      })
    }
  }
  const body = (stream: boolean) =>
    JSON.stringify({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Say hello in twenty tokens.'.padEnd(900, ' .') }],
      max_tokens: 64,
      ...(stream ? { stream: true } : {}),
    })
  // piece name -> µs samples, per target and kind
  const samples = new Map<string, Map<string, number[]>>()
  const cpu = new Map<string, { ms: number; calls: number }>()
  const add = (key: string, piece: string, us: number) => {
    const m = samples.get(key) ?? new Map<string, number[]>()
    samples.set(key, m)
    const a = m.get(piece) ?? []
    m.set(piece, a)
    a.push(us)
  }
  const ID = /"id":"chatcmpl-(\d+)"/g
  // x-bench-sent of each measured call -> its target and kind (BENCH_PROBE).
  const probed = new Map<string, string>()
  const one = async (pool: Pool, key: string | undefined, stream: boolean) => {
    const sent = process.hrtime.bigint()
    if (key !== undefined && PROBE) probed.set(String(sent), key)
    const res = await pool.request({
      method: 'POST',
      path: '/v1/chat/completions',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer sk-the-agent-holds-no-real-key',
        'x-bench-sent': String(sent),
      },
      body: body(stream),
    })
    const headAt = process.hrtime.bigint()
    if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${(await res.body.text()).slice(0, 300)}`)
    const events: number[] = []
    for await (const c of res.body) {
      const at = process.hrtime.bigint()
      for (const m of (c as Buffer).toString('latin1').matchAll(ID))
        events.push(Number(at - BigInt(m[1] as string)) / 1000)
    }
    if (key === undefined) return true
    add(key, 'request', Number(res.headers['x-bench-req-ns']) / 1000)
    add(key, 'head', Number(headAt - BigInt(res.headers['x-bench-head-sent'] as string)) / 1000)
    if (!stream) add(key, 'body', events[0] as number)
    else
      events.forEach((us, i) => {
        const piece =
          i === 0 ? 'ev0 role' : i === 1 ? 'ev1 first token' : i <= TOKENS ? 'ev2.. content' : 'tail'
        add(key, piece, us)
      })
    return true
  }
  const run = async (t: Target, stream: boolean, seconds: number, key: string | undefined) => {
    const pool = new Pool(t.origin, { connections: 64, pipelining: 1 })
    const pids = t.sidecar === undefined ? [] : [t.sidecar.pid]
    const c0 = pids.reduce((s, p) => s + cpuMs(p), 0)
    const done = await openLoop({ rate: RATE, seconds, name: t.name }, () => one(pool, key, stream))
    const c1 = pids.reduce((s, p) => s + cpuMs(p), 0)
    await pool.close()
    if (key !== undefined && pids.length > 0) {
      const slot = cpu.get(key) ?? { ms: 0, calls: 0 }
      slot.ms += c1 - c0
      slot.calls += done.length
      cpu.set(key, slot)
    }
  }
  for (const t of targets) for (const k of KINDS) await run(t, k === 'stream', 3, undefined)
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? targets : [...targets].reverse()
    for (const t of order)
      for (const k of KINDS) {
        await run(t, k === 'stream', SECONDS, `${t.name} ${k}`)
        process.stderr.write(`rep ${rep + 1} ${t.name} ${k} done\n`)
      }
  }
  const f = (n: number) => (Number.isFinite(n) ? (n / 1000).toFixed(3) : 'n/a')
  const lines = [
    '| target | call | piece | n | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const [key, m] of samples)
    for (const [piece, a] of m)
      lines.push(
        `| ${key.replace(' ', ' | ')} | ${piece} | ${a.length} | ${f(percentile(a, 50))} | ${f(percentile(a, 90))} | ${f(percentile(a, 99))} | ${f(percentile(a, 99.9))} | ${f(Math.max(...a))} |`,
      )
  lines.push('')
  for (const [key, c] of cpu)
    lines.push(`${key}: sidecar CPU ${(c.ms / c.calls).toFixed(3)} ms per call (${c.calls} calls)`)
  for (const [name, lines] of majors) {
    process.stdout.write(`${name}: ${lines.length} mark-compacts\n`)
    for (const l of lines) process.stdout.write(`  ${l}\n`)
  }
  for (const [name, a] of scavenges)
    lines.push(
      `${name}: ${a.length} scavenges over its whole run (warm-up included), pause ms p50 ${percentile(a, 50).toFixed(3)}, p90 ${percentile(a, 90).toFixed(3)}, p99 ${percentile(a, 99).toFixed(3)}, max ${Math.max(...a).toFixed(3)}`,
    )
  if (PROBE) lines.push('', ...(await probeTable(targets, dir, probed)))
  process.stdout.write(`${lines.join('\n')}\n`)
  // A signal for each sidecar before the end (a scratch build that dumps what it recorded on SIGUSR2).
  const signal = process.env.BENCH_END_SIGNAL as NodeJS.Signals | undefined
  if (signal !== undefined) {
    for (const t of targets) t.sidecar?.child.kill(signal)
    await new Promise((r) => setTimeout(r, 2000))
  }
  process.exit(0)
}
