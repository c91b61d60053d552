/**
 * What watching GCs costs: the same allocation loop (small objects, the image's 1 MB young generation, so
 * minor GCs run all the time) with nobody watching, with prom-client's default GC histogram, with a bare
 * `gc` PerformanceObserver (which counts them), and with `v8.GCProfiler` running. Each mode runs in its own child, the modes
 * interleaved over 5 rounds; median process CPU per million allocations and GCs seen. Run:
 * `node --conditions=svidecar-source sidecar/bench/gc-metric.ts`.
 */
import { spawnSync } from 'node:child_process'
import { PerformanceObserver } from 'node:perf_hooks'
import { GCProfiler } from 'node:v8'
import { collectDefaultMetrics, Registry } from 'prom-client'

const MODES = ['none', 'prom-client', 'observer', 'gcprofiler'] as const
const mode = process.argv[2]

/** Allocation in chunks with a turn of the event loop between them, as a server works: GC entries are
 * delivered to observers between chunks, inside the timed section. */
async function loop(): Promise<number> {
  let keep: unknown[] = []
  for (let chunk = 0; chunk < 500; chunk++) {
    for (let i = 0; i < 100_000; i++) {
      keep.push({ i, s: 'x' })
      if (keep.length === 100) keep = []
    }
    await new Promise((r) => setImmediate(r))
  }
  return keep.length
}

if (mode !== undefined) {
  if (mode === 'prom-client') {
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })
  } else if (mode === 'gcprofiler') {
    new GCProfiler().start()
  }
  let gcs = 0
  if (mode === 'observer')
    new PerformanceObserver((l) => {
      gcs += l.getEntries().length
    }).observe({ entryTypes: ['gc'] })
  await loop()
  await new Promise((r) => setTimeout(r, 50))
  gcs = 0
  const c0 = process.cpuUsage()
  await loop()
  const c = process.cpuUsage(c0)
  await new Promise((r) => setTimeout(r, 50))
  process.stdout.write(`${JSON.stringify({ cpuMs: (c.user + c.system) / 1000, gcs })}\n`)
  process.exit(0)
}

const results = new Map<string, number[]>(MODES.map((m) => [m, []]))
const seen = new Map<string, number>()
for (let r = 0; r < 5; r++) {
  for (const m of MODES) {
    const out = spawnSync(
      process.execPath,
      [...process.execArgv, '--max-semi-space-size=1', import.meta.filename, m],
      { encoding: 'utf8' },
    )
    if (out.status !== 0) throw new Error(out.stderr)
    const o = JSON.parse(out.stdout) as { cpuMs: number; gcs: number }
    results.get(m)?.push(o.cpuMs)
    seen.set(m, o.gcs)
  }
}
process.stdout.write(
  `node ${process.version}, ${new Date().toISOString()}\n\n| GC watcher | median CPU ms per 50M allocations | range | GCs in the timed loop |\n| --- | ---: | ---: | ---: |\n`,
)
for (const [m, xs] of results) {
  xs.sort((a, b) => a - b)
  process.stdout.write(
    `| ${m} | ${(xs[2] as number).toFixed(0)} | ${(xs[0] as number).toFixed(0)}–${(xs[4] as number).toFixed(0)} | ${m === 'observer' ? seen.get(m) : 'not counted'} |\n`,
  )
}
