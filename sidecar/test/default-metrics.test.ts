// prom-client's default metrics, registered without its GC histogram: every other name stays as prom-client has it.
import { collectDefaultMetrics, Registry } from 'prom-client'
import t from 'tap'
import { DEFAULT_COLLECTORS, registerDefaultMetrics } from '../src/observe/default-metrics.ts'
import { createMetrics } from '../src/observe/metrics.ts'

const names = (r: Registry) => r.getMetricsAsArray().map((m) => m.name)

t.test('the collectors are prom-client’s own list without gc', async (t) => {
  // A prom-client upgrade that adds or renames a collector fails here, not silently on a dashboard.
  const theirs = (collectDefaultMetrics as unknown as { metricsList: string[] }).metricsList
  t.same([...DEFAULT_COLLECTORS, 'gc'].sort(), [...theirs].sort())
})

t.test('the same metric names as collectDefaultMetrics, minus nodejs_gc_duration_seconds', async (t) => {
  const ours = new Registry()
  registerDefaultMetrics(ours)
  const theirs = new Registry()
  collectDefaultMetrics({ register: theirs })
  t.ok(names(theirs).includes('nodejs_gc_duration_seconds'))
  t.same(
    names(ours).sort(),
    names(theirs)
      .filter((n) => n !== 'nodejs_gc_duration_seconds')
      .sort(),
  )
  // The series the dashboard and alerts read are there and carry values.
  const text = await ours.metrics()
  for (const name of [
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'nodejs_eventloop_lag_p99_seconds',
  ])
    t.match(text, new RegExp(`^${name} \\d`, 'm'), name)
})

t.test('the sidecar’s registry has no GC histogram', async (t) => {
  const metrics = createMetrics()
  const text = await metrics.registry.metrics()
  t.notMatch(text, /nodejs_gc_duration_seconds/)
  t.match(text, /^process_cpu_seconds_total /m)
  t.match(text, /^nodejs_heap_size_used_bytes /m)
})
