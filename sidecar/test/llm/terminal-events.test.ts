// The frame that ends a stream cut by a budget, read raw as any client of each API would read it, and through
// the official SDKs' stream helpers: Chat Completions a `data:` chunk with an `error` object; the Responses API
// its documented `error` event (`event: error`, `type: "error"`, `code`, `message`, `param`, the next
// `sequence_number`); Anthropic an `event: error` frame in its error shape.
import Anthropic from '@anthropic-ai/sdk'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import OpenAI from 'openai'
import t, { type Test } from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { AGENT, startDevApi, startGateway } from '../helpers/llm-gateway.ts'
import { startLlmUpstream } from '../helpers/llm-upstream.ts'

// A day's budget (no minute boundary hands out a fresh one mid-test) far smaller than the 80-token answers.
const BUDGET = `budgets:
  defaultMaxTokens: 4
  extendTokens: 1
  limits:
    - { name: agent-day, subjects: ["${AGENT}"], tokensPerDay: 40 }
`

async function setup(t: Test) {
  const upstream = await startLlmUpstream({ tokens: 80, intervalMs: 1 })
  t.teardown(() => upstream.close())
  const gw = await startGateway(t, await startDevApi(t), upstream.url, BUDGET)
  return { upstream, gw }
}

async function events(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  const seen: EventSourceMessage[] = []
  const parser = createParser({ onEvent: (e) => seen.push(e) })
  parser.feed(await res.text())
  return { status: res.status, seen }
}

t.test('Responses API: a cut stream ends with the documented error event', async (t) => {
  const { gw, upstream } = await setup(t)
  const { status, seen } = await events(`${gw.url}/v1/responses`, {
    model: 'gpt-4o',
    input: 'Say many words.',
    stream: true,
  })
  t.equal(status, 200)
  const last = seen.at(-1) as EventSourceMessage
  t.equal(last.event, 'error', 'the last frame is an `error` event')
  const data = JSON.parse(last.data) as Record<string, unknown>
  t.match(data, { type: 'error', code: 'SVD_BUDGET_EXHAUSTED', message: /budget/, param: null })
  const before = seen
    .slice(0, -1)
    .map((e) => (JSON.parse(e.data) as { sequence_number: number }).sequence_number)
  t.ok(before.length > 2, 'events went through before the cut')
  t.equal(data.sequence_number, Math.max(...before) + 1, 'it continues the sequence')
  t.ok(
    seen.slice(0, -1).every((e) => e.event !== undefined && e.event !== 'error'),
    'every other frame is a named event of the stream',
  )
  await waitFor(() => upstream.openStreams === 0, 'the upstream request closed')
})

t.test('Responses API: the SDK stream helper throws the cut with its code', async (t) => {
  const { gw } = await setup(t)
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'dummy', maxRetries: 0 })
  const stream = openai.responses.stream({ model: 'gpt-4o', input: 'Say many words.' })
  let deltas = 0
  stream.on('response.output_text.delta', () => deltas++)
  const err = await stream.finalResponse().then(
    () => undefined,
    (e: unknown) => e,
  )
  t.type(err, OpenAI.APIError, String(err))
  t.equal((err as InstanceType<typeof OpenAI.APIError>).code, 'SVD_BUDGET_EXHAUSTED')
  t.ok(deltas > 0 && deltas < 80, `cut mid-way (${deltas} of 80)`)
})

t.test('Chat Completions and Anthropic Messages: the terminal frames read raw', async (t) => {
  const { gw } = await setup(t)
  const chat = await events(`${gw.url}/v1/chat/completions`, {
    model: 'gpt-4o',
    messages: [{ role: 'user', content: 'Say many words.' }],
    stream: true,
  })
  const lastChat = chat.seen.at(-1) as EventSourceMessage
  t.equal(lastChat.event, undefined, 'a plain data chunk, like every chunk of the stream')
  t.match(JSON.parse(lastChat.data), {
    error: { code: 'SVD_BUDGET_EXHAUSTED', type: 'rate_limit_error', param: null, message: /budget/ },
  })
  t.notOk(
    chat.seen.some((e) => e.data === '[DONE]'),
    'no [DONE]: the stream did not complete',
  )

  // A fresh budget for the Anthropic stream.
  const second = await setup(t)
  const messages = await events(
    `${second.gw.url}/v1/messages`,
    {
      model: 'claude-test-small',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'Say many words.' }],
      stream: true,
    },
    { 'anthropic-version': '2023-06-01' },
  )
  const lastMessage = messages.seen.at(-1) as EventSourceMessage
  t.equal(lastMessage.event, 'error')
  t.match(JSON.parse(lastMessage.data), {
    type: 'error',
    error: { type: 'rate_limit_error', details: { error_code: 'SVD_BUDGET_EXHAUSTED' } },
  })
  t.notOk(
    messages.seen.some((e) => e.event === 'message_stop'),
    'no message_stop: the message did not complete',
  )
})

t.test('the stream helpers of both SDKs reject with the cut and its code', async (t) => {
  const { gw } = await setup(t)
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'dummy', maxRetries: 0 })
  const chat = await openai.chat.completions
    .stream({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Say many words.' }] })
    .finalChatCompletion()
    .then(
      () => undefined,
      (e: unknown) => e,
    )
  t.type(chat, OpenAI.APIError, String(chat))
  t.equal((chat as InstanceType<typeof OpenAI.APIError>).code, 'SVD_BUDGET_EXHAUSTED')

  const second = await setup(t)
  const anthropic = new Anthropic({ baseURL: second.gw.url, apiKey: 'dummy', maxRetries: 0 })
  const message = await anthropic.messages
    .stream({
      model: 'claude-test-small',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'Say many words.' }],
    })
    .finalMessage()
    .then(
      () => undefined,
      (e: unknown) => e,
    )
  t.type(message, Anthropic.APIError, String(message))
  t.equal((message as InstanceType<typeof Anthropic.APIError>).errorCode, 'SVD_BUDGET_EXHAUSTED')
  t.equal((message as InstanceType<typeof Anthropic.APIError>).type, 'rate_limit_error')
})
