// A reservation taken in Redis is handed back even when Redis is away at the moment the call ends (issue 10:
// budgets never leak reservations). The settlement could not be sent then; it is sent once Redis is back,
// instead of leaving the reservation to hold part of the day's budget until the day is over. Redis keeps its
// data across the outage here (append-only file, as a restarted Redis or a network outage leaves it).
import t from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import type { RedisBudgetStore } from '../../src/budget/redis.ts'
import { windowsAt } from '../../src/budget/store.ts'
import { type LlmUsageEvent, on } from '../../src/observe/events.ts'
import { AGENT, startDevApi, startGateway, startRedis } from '../helpers/llm-gateway.ts'
import { startLlmUpstream } from '../helpers/llm-upstream.ts'

t.test('a settlement Redis missed is sent when it is back', async (t) => {
  const redis = await startRedis(t, t.testdir())
  let release: () => void = () => {}
  const held = new Promise<void>((r) => {
    release = r
  })
  const upstream = await startLlmUpstream({
    tokens: 5,
    inputTokens: 11,
    gate: (i) => (i === 2 ? held : undefined),
  })
  t.teardown(() => upstream.close())
  const gw = await startGateway(
    t,
    await startDevApi(t),
    upstream.url,
    `budgets:
  defaultMaxTokens: 50
  redis: { url: "${redis.url}", keyPrefix: "settle:", timeout: 500ms }
  limits:
    - { name: day, subjects: ["${AGENT}"], tokensPerDay: 100000 }
`,
  )
  const store = gw.sidecar.budgetStore as RedisBudgetStore
  await store.ready()
  const events: LlmUsageEvent[] = []
  t.teardown(on('llmUsage', (e) => events.push(e)))
  const key = { id: `day|${AGENT}`, name: 'day', limits: { tokensPerDay: 100000 } }
  const day = async () => {
    try {
      return (await store.counters(key, windowsAt(Date.now()))).day
    } catch {
      return undefined
    }
  }

  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true }),
  })
  t.equal(res.status, 200)
  const reserved = Number((await day())?.r)
  t.ok(reserved >= 50, `reserved in Redis while the stream runs (${reserved})`)

  await redis.stop()
  release()
  const body = await res.text()
  t.ok(body.endsWith('data: [DONE]\n\n'), 'the stream itself completed')
  await waitFor(() => events.length === 1, 'the call ended')
  t.equal(events[0]?.budget, undefined, 'its settlement failed: Redis was away')

  await redis.start()
  await waitFor(
    async () => {
      const d = await day()
      return d !== undefined && Number(d.r) === 0 && Number(d.u) === 16
    },
    'the reservation handed back and the 16 tokens used recorded',
    15_000,
    50,
  )
})
