/**
 * What each request allocates on the sidecar's own path: the inbound stage
 * list (stage-list.ts, the same requests bench:pipeline times) run N times,
 * split into requests that pass every stage and requests the pipeline refuses
 * (policy denials, unrouted paths).
 *
 * Bytes per request: the young generation is made big enough (64 MB
 * semi-spaces) that a batch allocates without a single GC in between, so the
 * growth of the used heap over the batch is what the batch allocated; a batch
 * during which a GC ran is thrown away and retried. GCs per 10k requests: a
 * second child with the image's flags (`--max-semi-space-size=1`, Dockerfile)
 * counts `gc` performance entries over 10k requests. Each is run twice: with
 * nobody listening to the request and decision events, and with no-op
 * subscribers, as when metrics or audit are on. Each request is ended as the
 * forwarder ends it (`Exchange.end`), which publishes the request event.
 *
 * Run: `npm run bench:alloc` (spawns both children itself).
 */
import { spawnSync } from 'node:child_process'
import { PerformanceObserver } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'
import { on } from '../src/observe/events.ts'
import { Exchange } from '../src/pipeline/exchange.ts'
import { app, runStages, type Sample, samples } from './stage-list.ts'

const mode = process.argv[2]
// As the sidecar does when metrics or audit are on: someone listens to the request and decision events.
if (process.argv[3] === 'subscribed') {
  on('request', () => {})
  on('policyDecision', () => {})
}

const passing: Sample[] = []
const refused: Sample[] = []
for (const s of samples) (runStages(s) instanceof Exchange ? passing : refused).push(s)

let gcs = 0
const observer = new PerformanceObserver((list) => {
  gcs += list.getEntries().length
})
observer.observe({ entryTypes: ['gc'] })

/** The observer's callback runs on a later tick; wait for it before reading `gcs`. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20))

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})

function run(set: Sample[], n: number): void {
  for (let i = 0; i < n; i++) runStages(set[i % set.length] as Sample, undefined, true)
}

/** Median bytes per request over 7 clean batches of `n` requests. */
async function bytesPerRequest(set: Sample[], n: number): Promise<number> {
  run(set, 20_000) // warm: optimised code allocates what production does, not what the interpreter does
  const results: number[] = []
  for (let tries = 0; results.length < 7 && tries < 50; tries++) {
    gc()
    await settle()
    const gcBefore = gcs
    const before = getHeapStatistics().used_heap_size
    run(set, n)
    const after = getHeapStatistics().used_heap_size
    await settle()
    if (gcs === gcBefore) results.push((after - before) / n)
  }
  if (results.length === 0) throw new Error('every batch saw a GC; make the batch smaller')
  results.sort((a, b) => a - b)
  return results[Math.floor(results.length / 2)] as number
}

if (mode === 'bytes') {
  const all = await bytesPerRequest(samples, 2000)
  const pass = await bytesPerRequest(passing, 2000)
  const refuse = await bytesPerRequest(refused, 2000)
  process.stdout.write(`${JSON.stringify({ all, pass, refuse })}\n`)
} else if (mode === 'gc') {
  run(samples, 20_000)
  gc()
  await settle()
  const before = gcs
  const cpu0 = process.cpuUsage()
  run(samples, 10_000)
  const cpu = process.cpuUsage(cpu0)
  await settle()
  process.stdout.write(
    `${JSON.stringify({ gcs: gcs - before, cpuUsPerRequest: (cpu.user + cpu.system) / 10_000 })}\n`,
  )
} else {
  const child = (flags: string[], m: string, sub = '') => {
    const r = spawnSync(process.execPath, [...process.execArgv, ...flags, import.meta.filename, m, sub], {
      encoding: 'utf8',
    })
    if (r.status !== 0) throw new Error(`child ${m} failed: ${r.stderr}`)
    return JSON.parse(r.stdout) as Record<string, number>
  }
  const b = child(['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64'], 'bytes')
  const bs = child(
    ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64'],
    'bytes',
    'subscribed',
  )
  const g = child(['--expose-gc', '--max-semi-space-size=1'], 'gc')
  const gs = child(['--expose-gc', '--max-semi-space-size=1'], 'gc', 'subscribed')
  const f = (x: number | undefined) => (x ?? 0).toFixed(0)
  process.stdout.write(
    [
      `node ${process.version}, ${new Date().toISOString()}; ${passing.length} passing / ${refused.length} refused sample requests`,
      '',
      '| inbound stage list + end, per request | no subscribers B | request/decision subscribers B |',
      '| --- | ---: | ---: |',
      `| all samples | ${f(b.all)} | ${f(bs.all)} |`,
      `| passing every stage | ${f(b.pass)} | ${f(bs.pass)} |`,
      `| refused (policy deny, no route) | ${f(b.refuse)} | ${f(bs.refuse)} |`,
      '',
      `GCs per 10k requests (all samples, --max-semi-space-size=1): ${g.gcs} without subscribers, ${gs.gcs} with; process CPU ${(g.cpuUsPerRequest ?? 0).toFixed(2)} / ${(gs.cpuUsPerRequest ?? 0).toFixed(2)} µs/request`,
      '',
    ].join('\n'),
  )
}
observer.disconnect()
await app.destroy()
