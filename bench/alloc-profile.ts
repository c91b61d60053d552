/**
 * Where a sidecar's garbage comes from: V8's sampling heap profiler, with the
 * objects later collected by scavenges and mark-compacts kept in the samples
 * (Node's `--heap-prof` keeps only what is still alive at its end, which hides
 * exactly the per-request garbage that drives young-generation GCs). The
 * sidecar runs as bench/llm.ts starts it, with `--inspect` on a loopback
 * port; this process drives it over the inspector protocol.
 *
 * Run: `node --conditions=svidecar-source bench/alloc-profile.ts`.
 * BENCH_KINDS (json,stream), BENCH_CALLS (2000 per kind), BENCH_RATE (100),
 * BENCH_WARMUP_CALLS (500), BENCH_INTERVAL (sampling interval in bytes, 512),
 * BENCH_TOP (40 rows), BENCH_CALLERS_OF (function names whose callers to
 * list, e.g. `nextTick`), BENCH_DEPTH (frames per call path, 6). Prints bytes per call by allocating function (self) and
 * by the nearest svidecar function on the stack (inclusive of what the
 * libraries it calls allocate).
 */
import { type CallFrame, frameKey, ours, startInspectedSidecar } from './inspector.ts'
import { sleep } from './procs.ts'

const KINDS = (process.env.BENCH_KINDS ?? 'json,stream').split(',')
const CALLS = Number(process.env.BENCH_CALLS ?? 2000)
const RATE = Number(process.env.BENCH_RATE ?? 100)
const WARMUP = Number(process.env.BENCH_WARMUP_CALLS ?? 500)
const INTERVAL = Number(process.env.BENCH_INTERVAL ?? 512)
const TOP = Number(process.env.BENCH_TOP ?? 40)
// Also list the call paths (innermost first, BENCH_DEPTH frames) that reach allocations in the functions named here.
const CALLERS_OF = (process.env.BENCH_CALLERS_OF ?? '').split(',').filter(Boolean)
const DEPTH = Number(process.env.BENCH_DEPTH ?? 6)

interface ProfileNode {
  callFrame: CallFrame
  selfSize: number
  id: number
  children: ProfileNode[]
}

const sidecar = await startInspectedSidecar()
const send = sidecar.send
const calls = (kind: string, n: number) => sidecar.calls(kind, n, RATE)

await send('HeapProfiler.enable')
for (const kind of KINDS) {
  await calls(kind, WARMUP)
  await sleep(200)
  await send('HeapProfiler.startSampling', {
    samplingInterval: INTERVAL,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  })
  const n = await calls(kind, CALLS)
  const { profile } = (await send('HeapProfiler.stopSampling')) as { profile: { head: ProfileNode } }
  const self = new Map<string, number>()
  const byOurs = new Map<string, number>()
  let total = 0
  const paths = new Map<string, number>()
  const walk = (node: ProfileNode, nearest: string, stack: string[]) => {
    const here = ours(node.callFrame) ? frameKey(node.callFrame) : nearest
    const frames = [frameKey(node.callFrame), ...stack]
    if (node.selfSize > 0 && CALLERS_OF.includes(node.callFrame.functionName)) {
      const path = frames.slice(0, DEPTH).join(' < ')
      paths.set(path, (paths.get(path) ?? 0) + node.selfSize)
    }
    if (node.selfSize > 0) {
      const k = frameKey(node.callFrame)
      self.set(k, (self.get(k) ?? 0) + node.selfSize)
      byOurs.set(here, (byOurs.get(here) ?? 0) + node.selfSize)
      total += node.selfSize
    }
    for (const c of node.children) walk(c, here, frames)
  }
  walk(profile.head, '(outside svidecar code)', [])
  const rows = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP)
      .map(
        ([k, v]) =>
          `${(v / n).toFixed(0).padStart(8)} B/call  ${((100 * v) / total).toFixed(1).padStart(5)} %  ${k}`,
      )
  process.stdout.write(
    [
      `\n## ${kind}: ${n} calls at ${RATE}/s, ${(total / n).toFixed(0)} bytes allocated per call (V8 heap, sampled every ${INTERVAL} B)`,
      '',
      'by allocating function:',
      ...rows(self),
      '',
      'by the nearest svidecar function on the stack:',
      ...rows(byOurs),
      '',
      ...(CALLERS_OF.length === 0 ? [] : [`call paths to ${CALLERS_OF.join(', ')}:`, ...rows(paths), '']),
    ].join('\n'),
  )
}
await sidecar.close()
process.exit(0)
