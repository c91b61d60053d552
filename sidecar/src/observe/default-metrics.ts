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

export function registerDefaultMetrics(registry: Registry): void {
  for (const name of DEFAULT_COLLECTORS) {
    const collect = require(`prom-client/lib/metrics/${name}`) as Collector
    // The precision collectDefaultMetrics uses when none is given.
    collect(registry, { eventLoopMonitoringPrecision: 10 })
  }
}
