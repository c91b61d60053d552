// A stream whose answer is complete is not cut. The provider reports the exact input only at the end of an
// OpenAI stream (the usage chunk after the last choice, `response.completed`); when that figure takes the call
// past its budget, the tokens are already spent and the answer already sent: ending the stream with an error
// then would stop nothing, and would make the SDK throw away a whole answer. The call settles with what it used,
// and the next call is refused.
import OpenAI from 'openai'
import t from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { type LlmUsageEvent, on } from '../../src/observe/events.ts'
import { AGENT, startDevApi, startGateway } from '../helpers/llm-gateway.ts'
import { startLlmUpstream } from '../helpers/llm-upstream.ts'

const MESSAGES = [{ role: 'user' as const, content: 'hi' }]

t.test('a budget passed only by the final usage report: the answer stands', async (t) => {
  // 11 input tokens as the provider counts them (the tokenizer makes "hi" far fewer), 5 output: 16 in all.
  // Events spread over time, as a provider sends them: the end of the stream comes a while after the usage.
  const upstream = await startLlmUpstream({ tokens: 5, inputTokens: 11, intervalMs: 10 })
  t.teardown(() => upstream.close())
  const gw = await startGateway(
    t,
    await startDevApi(t),
    upstream.url,
    `budgets:
  defaultMaxTokens: 4
  extendTokens: 1
  limits:
    - { name: chat-day, subjects: ["${AGENT}"], models: [gpt-4o], tokensPerDay: 15 }
    - { name: responses-day, subjects: ["${AGENT}"], models: [gpt-4o-mini], tokensPerDay: 15 }
`,
  )
  const events: LlmUsageEvent[] = []
  t.teardown(on('llmUsage', (e) => events.push(e)))
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'dummy', maxRetries: 0 })

  const chat = await openai.chat.completions
    .stream({ model: 'gpt-4o', messages: MESSAGES })
    .finalChatCompletion()
  t.equal(chat.choices[0]?.message.content, 'tok tok tok tok tok', 'the whole chat answer')
  const response = await openai.responses.stream({ model: 'gpt-4o-mini', input: 'hi' }).finalResponse()
  t.equal(response.output_text, 'tok tok tok tok tok', 'the whole Responses answer')

  await waitFor(() => events.length === 2, 'both calls settled')
  for (const e of events) {
    t.match(e, { inputTokens: 11, outputTokens: 5, estimated: false }, `${e.api}: the exact usage`)
    t.equal(e.budgetRefusal, undefined, `${e.api}: not cut`)
    t.same(e.budget?.remaining, { tokensPerDay: 0 }, `${e.api}: the budget is spent`)
  }
  const next = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.type(next, OpenAI.RateLimitError, 'the next call is refused')
})
