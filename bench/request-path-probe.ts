/**
 * Loaded into a proxy under test with `--import` (bench/llm-events.ts,
 * BENCH_PROBE=1): times each request's path inside the process, from Node's
 * HTTP server seeing the request (`http.server.request.start`) to undici
 * writing the upstream request's head (`undici:client:sendHeaders`), from the
 * diagnostics channels both publish, so nothing in the proxy changes. The
 * two ends are paired by the `x-bench-sent` header the bench sends. GC pauses
 * are recorded too (a PerformanceObserver), so the bench can tell which
 * request paths a pause fell into. Times are CLOCK_MONOTONIC ns
 * (`process.hrtime.bigint()`), the bench's own clock. On SIGUSR2 it writes what
 * it has to `$BENCH_PROBE_DIR/<pid>.json`.
 */
import { subscribe } from 'node:diagnostics_channel'
import { writeFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { PerformanceObserver, performance } from 'node:perf_hooks'

const started = new Map<string, bigint>()
// [x-bench-sent, arrived, upstream head written] per request.
const paths: Array<[string, string, string]> = []
// [start, end] of each GC pause.
const gcs: Array<[string, string]> = []
const SENT = /x-bench-sent:\s*(\d+)/i
// performance.now() (ms from the time origin) to hrtime ns.
const offset = process.hrtime.bigint() - BigInt(Math.round(performance.now() * 1e6))
const ns = (ms: number) => offset + BigInt(Math.round(ms * 1e6))

subscribe('http.server.request.start', (message) => {
  const sent = (message as { request: IncomingMessage }).request.headers['x-bench-sent']
  if (typeof sent === 'string') started.set(sent, process.hrtime.bigint())
})
subscribe('undici:client:sendHeaders', (message) => {
  const m = SENT.exec((message as { headers: string }).headers)
  if (m === null) return
  const sent = m[1] as string
  const at = started.get(sent)
  if (at === undefined) return
  started.delete(sent)
  paths.push([sent, String(at), String(process.hrtime.bigint())])
})
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push([String(ns(e.startTime)), String(ns(e.startTime + e.duration))])
}).observe({ entryTypes: ['gc'] })

process.on('SIGUSR2', () => {
  const dir = process.env.BENCH_PROBE_DIR ?? '/tmp'
  writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify({ paths, gcs }))
})
