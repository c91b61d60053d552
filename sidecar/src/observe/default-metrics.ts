/**
 * prom-client's default process and Node.js metrics, without its GC
 * histogram (`nodejs_gc_duration_seconds`). Watching `gc` performance entries
 * costs ~40 µs of CPU per GC whoever reads them (Node builds each entry with
 * deprecated getters), and with the image's 1 MB young generation a proxy
 * collects many times a second: about 1 % of CPU (bench/RESULTS.md, "prom-client's
 * GC histogram"). `collectDefaultMetrics` has no switch per metric, and
 * removing the histogram from the registry would leave its observer running,
 * so the other collectors are registered one by one. prom-client is pinned
 * exactly; a test checks that this list and its own stay in step.
 */
import { createRequire } from 'node:module'
import type { Registry } from 'prom-client'

type Collector = (registry: Registry, config: { eventLoopMonitoringPrecision: number }) => void

/** prom-client's `collectDefaultMetrics.metricsList`, in its order, minus `gc`. */
export const DEFAULT_COLLECTORS = [
  'processCpuTotal',
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'eventLoopLag',
  'processResources',
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
] as const

const require = createRequire(import.meta.url)

/**
 * How often the event-loop delay histogram (`nodejs_eventloop_lag_*`) samples. prom-client's default, 10 ms, wakes
 * an idle sidecar 100 times a second: ~6 ms of CPU per second doing nothing, in every pod. Every 100 ms costs a
 * tenth of that; a stall still delays the sample it overlaps, so long stalls show as before and short ones are
 * sampled less often.
 */
const EVENT_LOOP_SAMPLE_MS = 100

export function registerDefaultMetrics(registry: Registry): void {
  for (const name of DEFAULT_COLLECTORS) {
    const collect = require(`prom-client/lib/metrics/${name}`) as Collector
    collect(registry, { eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS })
  }
}
