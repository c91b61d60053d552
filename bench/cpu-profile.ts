/**
 * Where a sidecar's CPU goes per LLM call: V8's sampling CPU profiler over the
 * inspector, on a sidecar started as bench/llm.ts starts it, at the rate the
 * latency benchmarks use (20 calls/s by default: the per-call work runs cold
 * there, which is what the tail of those benchmarks sees).
 *
 * Run: `node --conditions=svidecar-source bench/cpu-profile.ts`.
 * BENCH_KINDS (stream,json), BENCH_CALLS (1200 per kind), BENCH_RATE (20),
 * BENCH_WARMUP_CALLS (300), BENCH_INTERVAL (sampling interval in µs, 100),
 * BENCH_TOP (40 rows). Prints µs per call by function (self) and, for the
 * sidecar's own functions, inclusive of everything they call. BENCH_CALLERS
 * (comma-separated function names, e.g. `writev,writeUtf8String`) adds, for
 * each, its self time split by the nearest callers (BENCH_DEPTH frames, 4).
 */
import { type CallFrame, frameKey, ours, startInspectedSidecar } from './inspector.ts'
import { sleep } from './procs.ts'

const KINDS = (process.env.BENCH_KINDS ?? 'stream,json').split(',')
const CALLS = Number(process.env.BENCH_CALLS ?? 1200)
const RATE = Number(process.env.BENCH_RATE ?? 20)
const WARMUP = Number(process.env.BENCH_WARMUP_CALLS ?? 300)
const INTERVAL = Number(process.env.BENCH_INTERVAL ?? 100)
const TOP = Number(process.env.BENCH_TOP ?? 40)
const CALLERS = (process.env.BENCH_CALLERS ?? '').split(',').filter((f) => f !== '')
const DEPTH = Number(process.env.BENCH_DEPTH ?? 4)

interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const sidecar = await startInspectedSidecar()
const send = sidecar.send
const calls = (kind: string, n: number) => sidecar.calls(kind, n, RATE)

await send('Profiler.enable')
await send('Profiler.setSamplingInterval', { interval: INTERVAL })
for (const kind of KINDS) {
  await calls(kind, WARMUP)
  await sleep(200)
  await send('Profiler.start')
  const n = await calls(kind, CALLS)
  const { profile } = (await send('Profiler.stop')) as { profile: Profile }
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id)
  // A sample's time is the gap to the next sample.
  const selfTime = new Map<number, number>()
  for (let i = 0; i < profile.samples.length - 1; i++) {
    const id = profile.samples[i] as number
    selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[i + 1] as number))
  }
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const callers = new Map<string, Map<string, number>>(CALLERS.map((f) => [f, new Map()]))
  let busy = 0
  for (const [id, t] of selfTime) {
    const node = byId.get(id) as ProfileNode
    const k = frameKey(node.callFrame)
    const split = callers.get(node.callFrame.functionName)
    if (split !== undefined) {
      const chain: string[] = []
      for (let at = parent.get(id); at !== undefined && chain.length < DEPTH; at = parent.get(at))
        chain.push(frameKey((byId.get(at) as ProfileNode).callFrame))
      const ck = chain.join(' ← ')
      split.set(ck, (split.get(ck) ?? 0) + t)
    }
    self.set(k, (self.get(k) ?? 0) + t)
    if (node.callFrame.functionName !== '(idle)') busy += t
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = (byId.get(at) as ProfileNode).callFrame
      if (!ours(frame)) continue
      const fk = frameKey(frame)
      if (seen.has(fk)) continue
      seen.add(fk)
      inclusive.set(fk, (inclusive.get(fk) ?? 0) + t)
    }
  }
  const rows = (m: Map<string, number>) =>
    [...m]
      .filter(([k]) => !k.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP)
      .map(
        ([k, v]) =>
          `${(v / n).toFixed(1).padStart(8)} µs/call  ${((100 * v) / busy).toFixed(1).padStart(5)} %  ${k}`,
      )
  process.stdout.write(
    [
      `\n## ${kind}: ${n} calls at ${RATE}/s, ${(busy / n).toFixed(0)} µs busy per call (sampled every ${INTERVAL} µs)`,
      '',
      'by function (self):',
      ...rows(self),
      '',
      "the sidecar's own functions, inclusive:",
      ...rows(inclusive),
      '',
      ...[...callers].flatMap(([f, m]) => [`${f}, by callers:`, ...rows(m), '']),
    ].join('\n'),
  )
}
await sidecar.close()
process.exit(0)
