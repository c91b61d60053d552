// Nothing Redis counted is left behind by an outage (issue 10: budgets never leak reservations). A settlement
// that could not be sent while Redis was away is sent once it is back (Redis keeps its data across the outage
// here: append-only file, as a restarted Redis or a network outage leaves it). A Redis that stalls (SIGSTOP)
// runs the commands the sidecar gave up waiting for once it resumes: a reservation for a call already refused
// is handed back, request and all, and so is an extension granted after its stream was cut.
import t from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import type { RedisBudgetStore } from '../../src/budget/redis.ts'
import { windowsAt } from '../../src/budget/store.ts'
import { type LlmUsageEvent, on } from '../../src/observe/events.ts'
import { AGENT, startDevApi, startGateway, startRedis } from '../helpers/llm-gateway.ts'
import { startLlmUpstream } from '../helpers/llm-upstream.ts'

type BudgetKey = Parameters<RedisBudgetStore['counters']>[0]

/** A budget's counters in Redis, or undefined while Redis does not answer. */
async function countersOf(store: RedisBudgetStore, key: BudgetKey, windows: ReturnType<typeof windowsAt>) {
  try {
    return await store.counters(key, windows)
  } catch {
    return undefined
  }
}

t.test('a settlement Redis missed is sent when it is back', async (t) => {
  const redis = await startRedis(t, t.testdir())
  const { promise: held, resolve: release } = Promise.withResolvers<void>()
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
  const day = async () => (await countersOf(store, key, windowsAt(Date.now())))?.day

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

t.test('a reservation Redis made after the sidecar stopped waiting is handed back', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startLlmUpstream({ tokens: 5, inputTokens: 11 })
  t.teardown(() => upstream.close())
  const gw = await startGateway(
    t,
    await startDevApi(t),
    upstream.url,
    `budgets:
  defaultMaxTokens: 50
  redis: { url: "${redis.url}", keyPrefix: "late:", timeout: 200ms }
  limits:
    - { name: minute, subjects: ["${AGENT}"], tokensPerMinute: 100000, requestsPerMinute: 1000 }
`,
  )
  const store = gw.sidecar.budgetStore as RedisBudgetStore
  await store.ready()
  const key = { id: `minute|${AGENT}`, name: 'minute', limits: { tokensPerMinute: 100000 } }
  // The call and the checks share one UTC minute: started early in one, they have most of it.
  await waitFor(() => Date.now() % 60_000 < 40_000, 'a fresh minute', 30_000, 100)
  const windows = windowsAt(Date.now())
  const minute = async () => (await countersOf(store, key, windows))?.minute
  const call = () =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
    })
  const first = await call()
  t.equal(first.status, 200)
  await first.text()
  await waitFor(async () => Number((await minute())?.u) === 16, 'the first call settled')

  // Redis stalls: the reservation is sent, the sidecar gives up waiting and refuses; Redis then runs it.
  redis.pause()
  const stalled = await call()
  t.equal(stalled.status, 503)
  t.equal(stalled.headers.get('x-svidecar-error'), 'SVD_BUDGET_UNAVAILABLE')
  await stalled.text()
  redis.resume()
  await waitFor(
    async () => {
      const m = await minute()
      return m !== undefined && Number(m.r) === 0 && Number(m.q) === 1 && Number(m.u) === 16
    },
    'nothing left reserved, and the refused call not counted as a request',
    10_000,
    50,
  )
  t.equal(upstream.received.length, 1, 'the refused call reached nothing')
})

t.test('an extension Redis granted after the stream was cut is handed back', async (t) => {
  const redis = await startRedis(t)
  const { promise: held, resolve: release } = Promise.withResolvers<void>()
  const upstream = await startLlmUpstream({
    tokens: 40,
    inputTokens: 11,
    // Slower than the store's timeout: the stream is still running when the extension times out.
    intervalMs: 25,
    gate: (i) => (i === 0 ? held : undefined),
  })
  t.teardown(() => upstream.close())
  const gw = await startGateway(
    t,
    await startDevApi(t),
    upstream.url,
    `budgets:
  defaultMaxTokens: 4
  extendTokens: 10
  redis: { url: "${redis.url}", keyPrefix: "extend:", timeout: 200ms }
  limits:
    - { name: day, subjects: ["${AGENT}"], tokensPerDay: 100000 }
`,
  )
  const store = gw.sidecar.budgetStore as RedisBudgetStore
  await store.ready()
  const key = { id: `day|${AGENT}`, name: 'day', limits: { tokensPerDay: 100000 } }
  const windows = windowsAt(Date.now())
  const day = async () => (await countersOf(store, key, windows))?.day
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true }),
  })
  t.equal(res.status, 200)
  t.ok(Number((await day())?.r) > 0, 'reserved')
  // Redis stalls while the stream runs past its reservation: the extension times out and the stream is cut
  // (fail closed); its settlement is sent and times out too. Redis then runs all three, in order.
  redis.pause()
  release()
  const body = await res.text()
  t.match(body, /SVD_BUDGET_UNAVAILABLE/, 'the stream was cut: the budget store did not answer')
  redis.resume()
  await waitFor(
    async () => {
      const d = await day()
      return d !== undefined && Number(d.r) === 0 && Number(d.u) > 0
    },
    'nothing left reserved once Redis has caught up',
    10_000,
    50,
  )
})
