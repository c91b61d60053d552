// A used-up budget reaches the official SDKs as it is, with their default settings (no maxRetries): both retry
// every 429 by themselves, sleeping `retry-after` first (the openai SDK up to a minute, the Anthropic SDK any
// length, hours on a day's budget), unless the answer says `x-should-retry: false`. The sidecar says so for
// SVD_BUDGET_EXHAUSTED: the caller gets its RateLimitError at once, after one request, with retry-after on it.
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import t from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { type LlmUsageEvent, on } from '../../src/observe/events.ts'
import { AGENT, startDevApi, startGateway } from '../helpers/llm-gateway.ts'
import { startLlmUpstream } from '../helpers/llm-upstream.ts'

const MESSAGES = [{ role: 'user' as const, content: 'hi' }]

t.test('a used-up budget is a RateLimitError at once, not retried by the SDKs', async (t) => {
  const upstream = await startLlmUpstream({ tokens: 5, inputTokens: 11 })
  t.teardown(() => upstream.close())
  // A day's budget smaller than one call: the first call spends it all (11 + 5 tokens settled).
  const gw = await startGateway(
    t,
    await startDevApi(t),
    upstream.url,
    `budgets:
  defaultMaxTokens: 4
  limits:
    - { name: agent-day, subjects: ["${AGENT}"], tokensPerDay: 10 }
`,
  )
  const events: LlmUsageEvent[] = []
  t.teardown(on('llmUsage', (e) => events.push(e)))
  // The SDKs as an agent would build them: base URL and a dummy key, every other option left at its default.
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'dummy' })
  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'dummy' })
  await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES })
  await waitFor(() => events.length === 1, 'the first call settled')

  // Today's code would sleep through retry-after (about a day for the Anthropic SDK): give up long before that.
  const signal = AbortSignal.timeout(20_000)
  const chat = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES }, { signal }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.type(chat, OpenAI.RateLimitError, 'openai: RateLimitError')
  const rl = chat as InstanceType<typeof OpenAI.RateLimitError>
  t.equal(rl.code, 'SVD_BUDGET_EXHAUSTED')
  t.equal(rl.headers?.get('x-should-retry'), 'false')
  t.ok(Number(rl.headers?.get('retry-after')) >= 1, 'retry-after still says when the budget resets')

  const message = await anthropic.messages
    .create({ model: 'claude-test-small', max_tokens: 4, messages: MESSAGES }, { signal })
    .then(
      () => undefined,
      (e: unknown) => e,
    )
  t.type(message, Anthropic.RateLimitError, 'Anthropic: RateLimitError, not an abort after sleeping')
  t.equal((message as InstanceType<typeof Anthropic.RateLimitError>).errorCode, 'SVD_BUDGET_EXHAUSTED')

  // One request per SDK call reached the sidecar: no retries.
  await waitFor(() => events.length >= 3, 'the refusals reported')
  t.equal(events.filter((e) => e.budgetRefusal?.at === 'before').length, 2, 'each call was sent once')
  t.equal(upstream.received.length, 1, 'only the first call reached the provider')
})
