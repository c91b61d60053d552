/**
 * The MCP lens's own costs, one core: filtering a 1,000-tool `tools/list`
 * answer against a 1,000-rule built-in policy (JSON body and SSE event; an
 * answer seen for the first time, which the lens reads, and the same answer
 * again, which it knows by its text), and what an SSE notification that is
 * not a list answer costs to pass. sidecar/bench/mcp-list.ts measures the
 * same list through the whole MCP stage (decisions as the sidecar makes
 * them, audit and metrics).
 * Targets from the MCP issue: filtering 1,000 tools ≤ 1 ms; an SSE
 * notification adds ≤ 0.5 ms at p99. Not a test: run it with
 * `npm run bench:mcp`.
 */
import { cpus } from 'node:os'
import { listFilterWrapper, type PendingLists, type PolicyResource, parsePolicy } from 'svidecar'
import { SpiffeId } from 'workload-api-client'
import { LIST_AGENT, listedTools, listPolicy } from '../sidecar/test/helpers/tool-lists.ts'

const AGENT = SpiffeId.parse(LIST_AGENT)
const engine = parsePolicy(listPolicy(), 'bench.yaml').engine
const keep = (resource: PolicyResource) =>
  engine.decide({ subject: AGENT, resource, context: { time: new Date() } }).decision === 'allow'

const tools = listedTools(1000)
const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools } }))
// 64 answers that differ in one description: more than the lens keeps (8 MB), so each is read as new.
const fresh = Array.from({ length: 64 }, (_, k) =>
  Buffer.from(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      result: { tools: tools.map((t, i) => (i === 0 ? { ...t, description: `${t.description} ${k}` } : t)) },
    }),
  ),
)
let turn = 0
const event = Buffer.from(`id: 7\nevent: message\ndata: ${body.toString()}\n\n`)
const note = Buffer.from(
  'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n\n',
)
const pending: PendingLists = new Map([['number:1', { id: 1, method: 'tools/list' as const }]])

function percentiles(name: string, run: () => void, samples: number, target: number): string {
  for (let i = 0; i < 200; i++) run()
  const ms = new Float64Array(samples)
  for (let s = 0; s < samples; s++) {
    const t0 = performance.now()
    run()
    ms[s] = performance.now() - t0
  }
  ms.sort()
  const at = (q: number) => ms[Math.min(samples - 1, Math.floor(q * samples))] as number
  const p99 = at(0.99)
  return `| ${name} | ${at(0.5).toFixed(3)} | ${p99.toFixed(3)} | ${target} | ${p99 <= target ? 'met' : '**missed**'} |`
}

const json = (answer: () => Buffer) => () => {
  const w = listFilterWrapper(
    { status: 200, headers: { 'content-type': 'application/json' } },
    pending,
    keep,
    1 << 24,
  )
  w?.data?.(answer())
  w?.end?.()
}
const sse = () => {
  const w = listFilterWrapper(
    { status: 200, headers: { 'content-type': 'text/event-stream' } },
    pending,
    keep,
    1 << 24,
  )
  w?.data?.(event)
}
const stream = listFilterWrapper(
  { status: 200, headers: { 'content-type': 'text/event-stream' } },
  pending,
  keep,
  1 << 24,
)
const passNote = () => {
  stream?.data?.(note)
}

const lines = [
  `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}, one core, ${new Date().toISOString()}`,
  '',
  '| benchmark | p50 ms | p99 ms | target p99 ms | verdict |',
  '| --- | ---: | ---: | ---: | --- |',
  percentiles(
    'filter a 1,000-tool tools/list (JSON body, first seen), 1,000-rule policy',
    json(() => fresh[turn++ % fresh.length] as Buffer),
    2000,
    1,
  ),
  percentiles(
    'filter a 1,000-tool tools/list (JSON body, seen before), 1,000-rule policy',
    json(() => body),
    2000,
    1,
  ),
  percentiles('filter a 1,000-tool tools/list (one SSE event), 1,000-rule policy', sse, 2000, 1),
  percentiles('pass one SSE notification through a filtering stream', passNote, 100_000, 0.5),
  // The floor of any filter that reads the answer: parsing it alone, same host, same moment.
  percentiles('for scale: JSON.parse of the same answer alone', () => JSON.parse(body.toString()), 2000, 1),
]
process.stdout.write(`${lines.join('\n')}\n`)
