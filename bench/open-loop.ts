/**
 * An open-loop load generator for the benchmarks: sends at a fixed rate
 * whatever the answers do (a closed loop would slow down with the system
 * under test and hide its queueing), waits for the last answer, and counts
 * failures without stopping. Percentiles over the samples it returns.
 */
import { sleep } from './procs.ts'

export interface OpenLoopOptions {
  /** Requests per second. */
  rate: number
  seconds: number
  /** For the failure line on stderr. */
  name: string
}

/** Calls `send(scheduledAt)` `rate × seconds` times on schedule; the samples of the calls that did not fail. */
export async function openLoop<T>(
  options: OpenLoopOptions,
  send: (scheduledAt: number) => Promise<T>,
): Promise<T[]> {
  const n = Math.round(options.seconds * options.rate)
  const start = performance.now() + 10
  const pending: Promise<T | undefined>[] = []
  let failed = 0
  for (let i = 0; i < n; i++) {
    const at = start + (i * 1000) / options.rate
    const wait = at - performance.now()
    if (wait > 1) await sleep(wait)
    pending.push(
      send(at).catch((err: Error) => {
        if (failed++ === 0) process.stderr.write(`${err.message}\n`)
        return undefined
      }),
    )
  }
  const samples = (await Promise.all(pending)).filter((s): s is Awaited<T> => s !== undefined)
  if (failed > 0) process.stderr.write(`${options.name}: ${failed} of ${n} failed\n`)
  return samples as T[]
}

/** The p-th percentile (nearest rank) of the values; NaN when there are none. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}
