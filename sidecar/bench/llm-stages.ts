/**
 * The LLM stages' own work per call, without sockets: what the usage and
 * budget stages (and the `llm.usage` audit line) cost on top of forwarding.
 * Each call is an Exchange with the lens's findings already on it, as
 * bench/llm.ts sends them (a 1 KB OpenAI chat body, `max_tokens: 64`),
 * through `usageStage().onRequest`, `budgetStage().onRequest` (in-memory
 * store), both stages' response wrappers fed the model server's bytes (a JSON
 * body with usage, or a 20-token SSE stream with the usage chunk the sidecar
 * asked for), then `Exchange.end`, the settlement and the audit line.
 *
 * Process CPU (µs) and bytes allocated per call: the young generation is big
 * enough (`--min-semi-space-size=64 --max-semi-space-size=64`) that a batch runs without a GC, so the
 * growth of the used heap over a batch is what it allocated; a batch with a
 * GC in it is thrown away. Median of 7 batches. The sources measured can be
 * another checkout's (`LLM_STAGES_SRC=/path/to/sidecar/src`), so a change is
 * compared with what it replaced in the same run.
 *
 * Run: `node --conditions=svidecar-source --expose-gc --min-semi-space-size=64 --max-semi-space-size=64 sidecar/bench/llm-stages.ts json|stream`
 * (bench/llm-cpu.ts's RESULTS entry gives the interleaved command).
 */
import { PerformanceObserver } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'
import { SpiffeId } from 'workload-api-client'

const src = process.env.LLM_STAGES_SRC ?? new URL('../src', import.meta.url).pathname
const kind = process.argv[2] === 'stream' ? 'stream' : 'json'
const BATCH = Number(process.env.LLM_STAGES_BATCH ?? (kind === 'stream' ? 100 : 500))

const { Exchange } = (await import(
  `${src}/pipeline/exchange.ts`
)) as typeof import('../src/pipeline/exchange.ts')
const { usageStage } = (await import(`${src}/stages/usage.ts`)) as typeof import('../src/stages/usage.ts')
const { budgetStage } = (await import(`${src}/stages/budget.ts`)) as typeof import('../src/stages/budget.ts')
const { BudgetTable } = (await import(`${src}/budget/limits.ts`)) as typeof import('../src/budget/limits.ts')
const { MemoryBudgetStore } = (await import(
  `${src}/budget/memory.ts`
)) as typeof import('../src/budget/memory.ts')
const { LLM_ATTRIBUTE } = (await import(
  `${src}/lens/llm/call.ts`
)) as typeof import('../src/lens/llm/call.ts')
const { loadTokenizer } = (await import(
  `${src}/lens/llm/usage/estimate.ts`
)) as typeof import('../src/lens/llm/usage/estimate.ts')
const { on } = (await import(`${src}/observe/events.ts`)) as typeof import('../src/observe/events.ts')
const { formatUsageLine } = (await import(
  `${src}/observe/audit-usage.ts`
)) as typeof import('../src/observe/audit-usage.ts')
await loadTokenizer()

const subject = SpiffeId.parse('spiffe://example.org/bench/agent')
const chat = {
  model: 'gpt-4o',
  messages: [{ role: 'user', content: 'Say hello in twenty tokens.'.padEnd(900, ' .') }],
  max_tokens: 64,
}
const body = Buffer.from(JSON.stringify(kind === 'stream' ? { ...chat, stream: true } : chat))

// The model server's bytes, as bench/llm-upstream-main.ts writes them: one write per event.
const chunk = (delta: unknown, finish: string | null, usage: unknown = null) =>
  `data: ${JSON.stringify({ id: 'chatcmpl-local', object: 'chat.completion.chunk', created: 1_767_225_600, model: 'gpt-4o', choices: usage === null ? [{ index: 0, delta, finish_reason: finish, logprobs: null }] : [], usage })}\n\n`
const streamChunks = [
  chunk({ role: 'assistant', content: '' }, null),
  ...Array.from({ length: 20 }, (_, i) => chunk({ content: i === 0 ? 'tok' : ' tok' }, null)),
  chunk({}, 'stop'),
  chunk(undefined, null, { prompt_tokens: 11, completion_tokens: 20, total_tokens: 31 }),
  'data: [DONE]\n\n',
].map((s) => Buffer.from(s))
const jsonChunks = [
  Buffer.from(
    JSON.stringify({
      id: 'chatcmpl-local',
      object: 'chat.completion',
      created: 1_767_225_600,
      model: 'gpt-4o',
      choices: [
        { index: 0, message: { role: 'assistant', content: 'tok'.repeat(20) }, finish_reason: 'stop' },
      ],
      usage: { prompt_tokens: 11, completion_tokens: 20, total_tokens: 31 },
    }),
  ),
]
const chunks = kind === 'stream' ? streamChunks : jsonChunks
const head = {
  status: 200,
  headers: { 'content-type': kind === 'stream' ? 'text/event-stream' : 'application/json' },
  cut: () => {
    throw new Error('the bench budget never cuts')
  },
}

const usage = usageStage({ knownModels: ['gpt-4o'] })
const budget = budgetStage({
  table: new BudgetTable([
    {
      name: 'bench',
      subjects: ['spiffe://example.org/bench/*'],
      perModel: false,
      tokensPerMinute: 1_000_000_000,
      requestsPerMinute: 100_000_000,
    },
  ]),
  store: new MemoryBudgetStore(),
  config: { defaultMaxTokens: 4096, extendTokens: 256 },
})
// The audit line is formatted as the audit log does (written nowhere: the write is the sink's, not the stages').
let lines = 0
let pending: (() => void) | undefined
on('llmUsage', (e) => {
  if (formatUsageLine(e).length > 0) lines++
  pending?.()
})
const fakeReq = { method: 'POST', url: '/v1/chat/completions', headers: {} } as never

async function call(): Promise<void> {
  const ex = new Exchange({ direction: 'outbound', listener: 'egress', req: fakeReq, upgrade: false })
  ex.subject = subject
  ex.body = body
  ex.attributes[LLM_ATTRIBUTE] = {
    api: 'openai.chat',
    model: 'gpt-4o',
    stream: kind === 'stream',
    maxTokens: 64,
    provider: 'local',
  }
  usage.onRequest(ex)
  const refused = await budget.onRequest(ex)
  if (refused !== undefined) throw refused
  // The budget stage's early prompt estimate runs on the next turn, while the provider would be working.
  await new Promise((resolve) => setImmediate(resolve))
  const wrappers = [usage.wrapResponse?.(ex, head), budget.wrapResponse?.(ex, head)]
  for (const c of chunks) {
    let out: Buffer = c
    for (const w of wrappers) {
      const r = w?.data?.(out)
      if (r !== undefined) out = r instanceof Promise ? await r : r
    }
  }
  const logged = new Promise<void>((resolve) => {
    pending = resolve
  })
  ex.end(200, undefined)
  await logged
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})
let gcs = 0
new PerformanceObserver((list) => {
  gcs += list.getEntries().length
}).observe({ entryTypes: ['gc'] })

for (let i = 0; i < 3000; i++) await call()
const cpu: number[] = []
const bytes: number[] = []
for (let tries = 0; bytes.length < 7 && tries < 40; tries++) {
  gc()
  await new Promise((resolve) => setTimeout(resolve, 20))
  const gcBefore = gcs
  const heap = getHeapStatistics().used_heap_size
  const t = process.cpuUsage()
  for (let i = 0; i < BATCH; i++) await call()
  const u = process.cpuUsage(t)
  const grown = getHeapStatistics().used_heap_size - heap
  await new Promise((resolve) => setTimeout(resolve, 20))
  cpu.push((u.user + u.system) / BATCH)
  if (gcs === gcBefore) bytes.push(grown / BATCH)
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? Number.NaN
process.stdout.write(
  `${JSON.stringify({ kind, cpuUs: median(cpu), bytes: median(bytes), batches: bytes.length, lines })}\n`,
)
