/**
 * What filtering a 1,000-tool `tools/list` answer costs in the MCP stage as
 * a sidecar runs it: the request decided by the stage (POST, protocol
 * 2025-11-25), the answer's body through the stage's response wrapper, each
 * tool decided by `authorize` against a 1,000-rule built-in policy (half of
 * them kept), with the sidecar's audit log and metrics subscribed (audit
 * lines written to a discarding stream). bench/mcp.ts measures the lens's
 * filter alone; this adds everything the stage does around it.
 *
 * Cells: a sidecar that never saw the server (every name decided, each
 * hidden one audited), the answer seen for the first time (a new text each
 * time: the scanner reads it; its names were decided before), the same answer again with a new request id (how a
 * server answers every list), and that again with tool pinning on (each
 * tool's text compared with the text last hashed for its pin). Target from
 * the MCP issue: filtering 1,000 tools ≤ 1 ms.
 *
 * Lives in the sidecar package because it drives internal stage modules.
 * Run: `npm run bench:mcp` (after bench/mcp.ts, with the image's young
 * generation, `--max-semi-space-size=1`).
 */
import { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { cpus } from 'node:os'
import { Writable } from 'node:stream'
import { SpiffeId } from 'workload-api-client'
import { createAuditLog } from '../src/observe/audit.ts'
import { createLogger } from '../src/observe/log.ts'
import { createMetrics } from '../src/observe/metrics.ts'
import { Exchange } from '../src/pipeline/exchange.ts'
import type { ResponseWrapper, Stage } from '../src/pipeline/stage.ts'
import { parsePolicy } from '../src/policy/file.ts'
import { mcpStage } from '../src/stages/mcp.ts'
import { LIST_AGENT, listedTools, listPolicy } from '../test/helpers/tool-lists.ts'

const AGENT = SpiffeId.parse(LIST_AGENT)
const engine = parsePolicy(listPolicy(), 'bench.yaml').engine

const metrics = createMetrics()
metrics.subscribe()
let auditBytes = 0
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    auditBytes += chunk.length
    done()
  },
})
createAuditLog(
  { output: 'stdout', maxBytes: 1 << 20, maxFiles: 1 },
  { logger: createLogger({ level: 'error', stream: { write: () => true } }), stdout: sink },
).subscribe()

const options = {
  paths: ['/mcp'],
  maxMessageBytes: 4 << 20,
  maxSessions: 1000,
  sessionIdleTimeoutMs: 600_000,
  policy: engine,
}
const plain = mcpStage(options)
const pinning = mcpStage({ ...options, pinTools: true })

const tools = listedTools(1000)
const answer = (id: number, salt: string) =>
  Buffer.from(
    JSON.stringify({
      result: {
        tools: salt === '' ? tools : tools.map((t) => ({ ...t, description: t.description + salt })),
      },
      jsonrpc: '2.0',
      id,
    }),
  )

function post(id: number): Exchange {
  const req = new IncomingMessage(new Socket())
  req.method = 'POST'
  req.url = '/mcp'
  req.headers = {
    host: 'mcp.internal',
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-11-25',
  }
  const ex = new Exchange({ direction: 'inbound', listener: 'public', req, upgrade: false, peer: AGENT })
  ex.body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' }))
  return ex
}

/** One list request (id `id`) decided and its answer filtered; the filtered body's length (checked below). */
function list(stage: Stage, id: number, body: Buffer): number {
  const ex = post(id)
  if (stage.onRequest(ex) !== undefined) throw new Error('the list request was refused')
  const w = stage.wrapResponse?.(ex, {
    status: 200,
    headers: { 'content-type': 'application/json' },
  }) as ResponseWrapper
  w.data?.(body)
  const out = w.end?.()
  if (out === undefined || out instanceof Promise) throw new Error('the filter went async')
  return out.length
}

interface Row {
  name: string
  p50: number
  p99: number
  cpu: number
}

function measure(name: string, run: () => number, count: number, warmup = 300): Row {
  for (let i = 0; i < warmup; i++) run()
  const ms = new Float64Array(count)
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    run()
    ms[i] = performance.now() - t0
  }
  const cpu = process.cpuUsage(cpu0)
  ms.sort()
  return {
    name,
    p50: ms[Math.floor(count * 0.5)] as number,
    p99: ms[Math.floor(count * 0.99)] as number,
    cpu: (cpu.user + cpu.system) / 1000 / count,
  }
}

// A new text each time: 64 answers that differ in one description, cycled (the scan cache keeps 8 MB of them);
// the same answer with 64 ids.
const fresh = Array.from({ length: 64 }, (_, k) => answer(k + 1, ` (${k})`))
const same = Array.from({ length: 64 }, (_, k) => answer(k + 1, ''))
let turn = 0
const cycled = (stage: Stage, bodies: Buffer[]) => () => {
  const k = turn++ % bodies.length
  return list(stage, k + 1, bodies[k] as Buffer)
}
const size = (same[0] as Buffer).length
const kept = list(plain, 1, same[0] as Buffer)
if (kept >= size * 0.6 || kept <= size * 0.4) throw new Error(`kept ${kept} of ${size} bytes`)

// A sidecar that never saw the server: a new stage each time (nothing decided, pinned or audited before).
const stages: Array<Stage | undefined> = Array.from({ length: 250 }, () => mcpStage(options))
let nextStage = 0
const neverSeen = () => {
  const k = turn++ % fresh.length
  const stage = stages[nextStage] as Stage
  stages[nextStage++] = undefined
  return list(stage, k + 1, fresh[k] as Buffer)
}

// Cheapest first: the never-seen cell leaves a large old generation that every later collection would walk.
const rows = [
  measure('the same answer again, new id', cycled(plain, same), 2000),
  measure(
    'tool pinning on, the same answer again (each tool compared with its pin)',
    cycled(pinning, same),
    1000,
  ),
  measure('first sight of the answer (scanned; its names decided before)', cycled(plain, fresh), 2000),
  measure('a server never seen (new stage: every name decided, hidden ones audited)', neverSeen, 200, 50),
]
const lines = [
  `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}, one core, ${new Date().toISOString()}`,
  `a ~${Math.round(size / 1000)} KB answer of 1,000 tools, half kept; ${Math.round(auditBytes / 1024)} KB of audit lines written in all`,
  '',
  '| MCP stage, one tools/list answer | p50 ms | p99 ms | CPU ms (mean) | target ms | verdict (p99) |',
  '| --- | ---: | ---: | ---: | ---: | --- |',
  ...rows.map(
    (r) =>
      `| ${r.name} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.cpu.toFixed(3)} | 1 | ${r.p99 <= 1 ? 'met' : '**missed**'} |`,
  ),
]
process.stdout.write(`${lines.join('\n')}\n`)
