// Budgets shared through a real redis-server (started per test on a free port, no persistence): two sidecars
// draw on one budget, a stream is cut when the shared budget runs out, and Redis going away fails closed with
// SVD_BUDGET_UNAVAILABLE by default (or open when configured) and recovers when it is back.
import OpenAI from 'openai'
import t, { type Test } from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import type { RedisBudgetStore } from '../../src/budget/redis.ts'
import { windowsAt } from '../../src/budget/store.ts'
import { type LlmUsageEvent, on } from '../../src/observe/events.ts'
import { AGENT, type Gateway, startDevApi, startGateway, startRedis } from '../helpers/llm-gateway.ts'
import { startLlmUpstream } from '../helpers/llm-upstream.ts'

const MESSAGES = [{ role: 'user' as const, content: 'Say many words.' }]

function usageEvents(t: Test): LlmUsageEvent[] {
  const seen: LlmUsageEvent[] = []
  t.teardown(on('llmUsage', (e) => seen.push(e)))
  return seen
}

const yaml = (url: string, prefix: string, limit: string, onUnavailable = 'deny') => `
budgets:
  defaultMaxTokens: 4
  extendTokens: 1
  redis: { url: "${url}", keyPrefix: "${prefix}", timeout: 500ms, onUnavailable: ${onUnavailable} }
  limits:
    - name: shared
      subjects: ["${AGENT}"]
      ${limit}
`

const client = (gw: Gateway) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'dummy', maxRetries: 0 })
const store = (gw: Gateway) => gw.sidecar.budgetStore as RedisBudgetStore

t.test('two sidecars share one budget through Redis', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startLlmUpstream({ tokens: 5, inputTokens: 11 })
  t.teardown(() => upstream.close())
  const api = await startDevApi(t)
  const config = yaml(redis.url, 'two:', 'tokensPerDay: 30')
  const a = await startGateway(t, api, upstream.url, config)
  const b = await startGateway(t, api, upstream.url, config)
  await Promise.all([store(a).ready(), store(b).ready()])
  const events = usageEvents(t)

  await client(a).chat.completions.create({ model: 'gpt-4o', messages: MESSAGES })
  await client(b).chat.completions.create({ model: 'gpt-4o', messages: MESSAGES })
  await waitFor(() => events.length === 2, 'both settled')
  t.match(events[1], { inputTokens: 11, outputTokens: 5, budget: { remaining: { tokensPerDay: 0 } } })
  for (const gw of [a, b]) {
    const err = await client(gw)
      .chat.completions.create({ model: 'gpt-4o', messages: MESSAGES })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    t.ok(err instanceof OpenAI.RateLimitError, 'either sidecar refuses once the shared budget is used up')
    t.equal((err as InstanceType<typeof OpenAI.RateLimitError>).code, 'SVD_BUDGET_EXHAUSTED')
  }
  t.equal(upstream.received.length, 2)
  const key = { id: `shared|${AGENT}`, name: 'shared', limits: { tokensPerDay: 30 } }
  const counters = await store(a).counters(key, windowsAt(Date.now()))
  t.equal(Number(counters.day.u), 32, 'used in Redis: both calls')
  t.equal(Number(counters.day.r), 0, 'nothing left reserved')
})

t.test('a stream on one sidecar is cut when the shared budget runs out', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startLlmUpstream({ tokens: 80, intervalMs: 1 })
  t.teardown(() => upstream.close())
  const api = await startDevApi(t)
  const a = await startGateway(t, api, upstream.url, yaml(redis.url, 'cut:', 'tokensPerDay: 50'))
  await store(a).ready()
  const stream = await client(a).chat.completions.create({
    model: 'gpt-4o',
    messages: MESSAGES,
    stream: true,
  })
  let words = 0
  const err = await (async () => {
    try {
      for await (const c of stream) if (c.choices[0]?.delta.content) words++
    } catch (e) {
      return e
    }
    return undefined
  })()
  t.ok(err instanceof OpenAI.APIError)
  t.equal((err as InstanceType<typeof OpenAI.APIError>).code, 'SVD_BUDGET_EXHAUSTED')
  t.ok(words > 10 && words < 80, `cut mid-way (${words} of 80)`)
  await waitFor(() => upstream.openStreams === 0, 'the upstream request closed')
  const key = { id: `shared|${AGENT}`, name: 'shared', limits: { tokensPerDay: 50 } }
  await waitFor(
    async () => Number((await store(a).counters(key, windowsAt(Date.now()))).day.r) === 0,
    'the reservation returned',
  )
})

t.test(
  'Redis going away: fail closed by default with SVD_BUDGET_UNAVAILABLE, open when configured',
  async (t) => {
    const redis = await startRedis(t)
    const upstream = await startLlmUpstream({ tokens: 3 })
    t.teardown(() => upstream.close())
    const api = await startDevApi(t)
    const closed = await startGateway(t, api, upstream.url, yaml(redis.url, 'gone:', 'tokensPerDay: 100000'))
    const open = await startGateway(
      t,
      api,
      upstream.url,
      yaml(redis.url, 'gone:', 'tokensPerDay: 100000', 'allow'),
    )
    await Promise.all([store(closed).ready(), store(open).ready()])
    await client(closed).chat.completions.create({ model: 'gpt-4o', messages: MESSAGES })

    await redis.stop()
    const forwarded = upstream.received.length
    const res = await fetch(`${closed.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: MESSAGES }),
    })
    t.equal(res.status, 503)
    t.equal(res.headers.get('x-svidecar-error'), 'SVD_BUDGET_UNAVAILABLE')
    const body = (await res.json()) as { error: { code: string; message: string } }
    t.equal(body.error.code, 'SVD_BUDGET_UNAVAILABLE')
    t.notMatch(body.error.message, /127\.0\.0\.1|redis:\/\//, 'the Redis address is not in the answer')
    t.equal(upstream.received.length, forwarded, 'nothing was forwarded')

    const ok = await client(open).chat.completions.create({ model: 'gpt-4o', messages: MESSAGES })
    t.equal(ok.choices.length, 1, 'onUnavailable: allow lets the call through uncounted')

    await redis.start()
    await waitFor(
      async () => {
        const r = await fetch(`${closed.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt-4o', messages: MESSAGES }),
        })
        await r.arrayBuffer()
        return r.status === 200
      },
      'calls go through again once Redis is back',
      15_000,
      200,
    )
  },
)

t.test('streams aborted at random points on two sidecars leave the shared budget balanced', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startLlmUpstream({ tokens: 20, intervalMs: 1 })
  t.teardown(() => upstream.close())
  const api = await startDevApi(t)
  const limit = 3000
  const config = yaml(redis.url, 'balance:', `tokensPerDay: ${limit}`)
  const gws = [
    await startGateway(t, api, upstream.url, config),
    await startGateway(t, api, upstream.url, config),
  ]
  await Promise.all(gws.map((gw) => store(gw).ready()))
  const events = usageEvents(t)
  const body = JSON.stringify({ model: 'gpt-4o', messages: MESSAGES, stream: true })
  let seed = 7
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
    return seed / 2_147_483_648
  }
  const total = 200
  let next = 0
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (next < total) {
        const gw = gws[next++ % 2] as Gateway
        const ctl = new AbortController()
        const stopAfter = Math.floor(random() * 4000)
        const toEnd = random() < 0.1
        try {
          const res = await fetch(`${gw.url}/v1/chat/completions`, {
            method: 'POST',
            body,
            headers: { 'content-type': 'application/json' },
            signal: ctl.signal,
          })
          let read = 0
          for await (const chunk of res.body ?? []) {
            read += (chunk as Uint8Array).length
            if (!toEnd && read >= stopAfter) {
              ctl.abort()
              break
            }
          }
        } catch {
          // Aborted on purpose.
        }
      }
    }),
  )
  const key = { id: `shared|${AGENT}`, name: 'shared', limits: { tokensPerDay: limit } }
  const day = async () => (await store(gws[0] as Gateway).counters(key, windowsAt(Date.now()))).day
  const used = () => events.reduce((sum, e) => sum + e.inputTokens + e.outputTokens, 0)
  await waitFor(
    async () => {
      const d = await day()
      return Number(d.r) === 0 && Number(d.u) === used()
    },
    'reserved back to 0 and used equal to the usage events',
    30_000,
    50,
  )
  t.ok(events.length >= total * 0.9, `${events.length} calls reached the budget`)
  t.ok(
    events.some((e) => e.budgetRefusal !== undefined),
    'the shared budget ran out on the way',
  )
  // Each of the 20 concurrent streams may overrun by what arrived while its last extension was asked for.
  t.ok(Number((await day()).u) <= limit + 20 * 10, 'the overrun is bounded by a few tokens per stream')
})
