// Budgets in memory through a real sidecar with the official SDKs: a stream that runs out is ended with the
// API's own error event (the SDK throws) and the upstream request is closed; the next call is refused with 429
// and retry-after before anything is forwarded; a requests-per-minute budget; 1,000 streams aborted at random
// points leave the budget balanced (budget-balance.test.ts).
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import t, { type Test } from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { type LlmUsageEvent, on } from '../../src/observe/events.ts'
import { AGENT, startDevApi, startGateway } from '../helpers/llm-gateway.ts'
import { type LlmUpstreamOptions, startLlmUpstream } from '../helpers/llm-upstream.ts'

function usageEvents(t: Test): LlmUsageEvent[] {
  const seen: LlmUsageEvent[] = []
  t.teardown(on('llmUsage', (e) => seen.push(e)))
  return seen
}

// Tokens per day: a minute boundary in the middle of a test must not hand out a fresh budget.
const budgets = (limit: string, extra = '') => `
budgets:
  defaultMaxTokens: 4
  extendTokens: 1
  limits:
    - name: agent-tokens
      subjects: ["${AGENT}"]
      ${limit}
${extra}`

async function setup(t: Test, upstreamOptions: LlmUpstreamOptions, yaml: string) {
  const upstream = await startLlmUpstream(upstreamOptions)
  t.teardown(() => upstream.close())
  const api = await startDevApi(t)
  const gw = await startGateway(t, api, upstream.url, yaml)
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'dummy-agent-key', maxRetries: 0 })
  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'dummy-agent-key', maxRetries: 0 })
  return { upstream, gw, openai, anthropic, events: usageEvents(t) }
}

const MESSAGES = [{ role: 'user' as const, content: 'Say many words.' }]

t.test(
  'OpenAI: a stream that runs out of budget ends with an error the SDK throws; then 429 before forwarding',
  async (t) => {
    const { openai, upstream, events, gw } = await setup(
      t,
      { tokens: 80, intervalMs: 1 },
      budgets('tokensPerDay: 50'),
    )
    const stream = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES, stream: true })
    let words = 0
    const err = await (async () => {
      try {
        for await (const c of stream) if (c.choices[0]?.delta.content) words++
      } catch (e) {
        return e
      }
      return undefined
    })()
    t.ok(err instanceof OpenAI.APIError, 'the SDK surfaces the cut as an APIError, not a truncated success')
    t.equal((err as InstanceType<typeof OpenAI.APIError>).code, 'SVD_BUDGET_EXHAUSTED')
    t.ok(words > 10 && words < 80, `the stream was cut mid-way (${words} of 80 words)`)
    await waitFor(() => upstream.openStreams === 0, 'the upstream request closed')
    await waitFor(() => events.length === 1, 'usage event')
    t.match(events[0], {
      code: 'SVD_BUDGET_EXHAUSTED',
      budgetRefusal: { at: 'stream', name: 'agent-tokens' },
      budget: { names: ['agent-tokens'], remaining: { tokensPerDay: 0 } },
      estimated: true,
    })

    const forwarded = upstream.received.length
    const refused = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES }).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(refused instanceof OpenAI.RateLimitError, '429 before forwarding')
    const rl = refused as InstanceType<typeof OpenAI.RateLimitError>
    t.equal(rl.status, 429)
    t.equal(rl.code, 'SVD_BUDGET_EXHAUSTED')
    const retryAfter = Number(rl.headers?.get('retry-after'))
    t.ok(retryAfter >= 1 && retryAfter <= 86_400, `retry-after until the day resets (${retryAfter} s)`)
    t.equal(rl.headers?.get('x-svidecar-error'), 'SVD_BUDGET_EXHAUSTED')
    t.equal(upstream.received.length, forwarded, 'nothing reached the upstream')

    await waitFor(() => events.length === 2, 'usage event of the refusal')
    t.match(events[1], {
      budgetRefusal: { at: 'before', kind: 'tokensPerDay' },
      inputTokens: 0,
      outputTokens: 0,
    })
    const admin = gw.sidecar.addresses.admin
    const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text()
    t.match(text, /svidecar_llm_budget_refusals_total\{at="stream",limit="tokens"\} 1/)
    t.match(text, /svidecar_llm_budget_refusals_total\{at="before",limit="tokensPerDay"\} 1/)
    const line = gw.audit
      .map((l) => JSON.parse(l))
      .find((l) => l.kind === 'llm.usage' && l.code !== undefined)
    t.match(line, {
      budget: ['agent-tokens'],
      budgetRemaining: { tokensPerDay: 0 },
      budgetRefusal: { at: 'stream' },
    })
  },
)

t.test('Anthropic: the cut is an `event: error` frame the SDK throws', async (t) => {
  const { anthropic, upstream } = await setup(t, { tokens: 80, intervalMs: 1 }, budgets('tokensPerDay: 50'))
  const stream = await anthropic.messages.create({
    model: 'claude-test-small',
    max_tokens: 100,
    messages: MESSAGES,
    stream: true,
  })
  let words = 0
  const err = await (async () => {
    try {
      for await (const e of stream) if (e.type === 'content_block_delta') words++
    } catch (e) {
      return e
    }
    return undefined
  })()
  t.ok(err instanceof Anthropic.APIError, 'the SDK throws')
  t.match((err as InstanceType<typeof Anthropic.APIError>).error, {
    type: 'error',
    error: { type: 'rate_limit_error', details: { error_code: 'SVD_BUDGET_EXHAUSTED' } },
  })
  t.ok(words > 0 && words < 80, `cut mid-way (${words} of 80)`)
  await waitFor(() => upstream.openStreams === 0, 'the upstream request closed')
  const refused = await anthropic.messages
    .create({ model: 'claude-test-small', max_tokens: 10, messages: MESSAGES })
    .then(
      () => undefined,
      (e: unknown) => e,
    )
  t.ok(refused instanceof Anthropic.RateLimitError)
  t.match((refused as InstanceType<typeof Anthropic.RateLimitError>).error, {
    type: 'error',
    error: { type: 'rate_limit_error', details: { error_code: 'SVD_BUDGET_EXHAUSTED' } },
  })
  t.ok(Number((refused as InstanceType<typeof Anthropic.RateLimitError>).headers?.get('retry-after')) >= 1)
})

t.test('requests per minute: the call past the limit is refused with 429', async (t) => {
  const { openai, upstream } = await setup(t, { tokens: 2 }, budgets('requestsPerMinute: 3'))
  let ok = 0
  let limited: unknown
  // A minute boundary may fall between the calls and reset the count: then more than three go through.
  for (let i = 0; i < 8 && limited === undefined; i++) {
    await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES }).then(
      () => ok++,
      (e: unknown) => {
        limited = e
      },
    )
  }
  t.ok(limited instanceof OpenAI.RateLimitError)
  t.ok(ok >= 3, `${ok} calls went through first`)
  const retry = Number((limited as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after'))
  t.ok(retry >= 1 && retry <= 60, 'retry-after until the minute resets')
  t.equal(upstream.received.length, ok)
})

t.test('Responses API: the cut is the error event of that API, which the SDK throws', async (t) => {
  const { openai, upstream } = await setup(t, { tokens: 80, intervalMs: 1 }, budgets('tokensPerDay: 50'))
  const stream = await openai.responses.create({ model: 'gpt-4o', input: 'Say many words.', stream: true })
  let deltas = 0
  const err = await (async () => {
    try {
      for await (const e of stream) if (e.type === 'response.output_text.delta') deltas++
    } catch (e) {
      return e
    }
    return undefined
  })()
  t.ok(err instanceof OpenAI.APIError)
  t.equal((err as InstanceType<typeof OpenAI.APIError>).code, 'SVD_BUDGET_EXHAUSTED')
  t.ok(deltas > 10 && deltas < 80, `cut mid-way (${deltas} of 80)`)
  await waitFor(() => upstream.openStreams === 0, 'the upstream request closed')
})
