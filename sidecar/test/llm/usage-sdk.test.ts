// Token accounting through a real sidecar with the official SDKs (base URL at the outbound listener, a dummy
// key): usage counted for each API, streamed and not; include_usage added for a client that did not ask and its
// chunk hidden from it (kept for one that asked); every event reaches the client before the next one is sent;
// the llm.usage audit line and the token metrics.
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import t, { type Test } from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { type LlmUsageEvent, on } from '../../src/observe/events.ts'
import { startDevApi, startGateway } from '../helpers/llm-gateway.ts'
import { type LlmUpstreamOptions, startLlmUpstream } from '../helpers/llm-upstream.ts'

function usageEvents(t: Test): LlmUsageEvent[] {
  const seen: LlmUsageEvent[] = []
  t.teardown(on('llmUsage', (e) => seen.push(e)))
  return seen
}

async function setup(t: Test, upstreamOptions: LlmUpstreamOptions = {}, yaml = '') {
  const upstream = await startLlmUpstream(upstreamOptions)
  t.teardown(() => upstream.close())
  const api = await startDevApi(t)
  const gw = await startGateway(t, api, upstream.url, yaml)
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'dummy-agent-key', maxRetries: 0 })
  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: 'dummy-agent-key', maxRetries: 0 })
  return { upstream, gw, openai, anthropic, events: usageEvents(t) }
}

const MESSAGES = [{ role: 'user' as const, content: 'Say five words.' }]

t.test('usage is counted for every API, streamed and not, exactly from the provider', async (t) => {
  const { openai, anthropic, events, gw } = await setup(t, { tokens: 5, inputTokens: 11 })
  const expect = async (what: string, api: string, run: () => Promise<unknown>, output = 5) => {
    const before = events.length
    await run()
    await waitFor(() => events.length > before, `usage event for ${what}`)
    t.match(events.at(-1), { api, model: /./, inputTokens: 11, outputTokens: output, estimated: false }, what)
  }
  await expect('chat', 'openai.chat', () =>
    openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES }),
  )
  await expect('chat stream', 'openai.chat', async () => {
    const s = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES, stream: true })
    for await (const _ of s);
  })
  await expect('completions', 'openai.completions', () =>
    openai.completions.create({ model: 'gpt-4o', prompt: 'hi' }),
  )
  await expect('completions stream', 'openai.completions', async () => {
    const s = await openai.completions.create({ model: 'gpt-4o', prompt: 'hi', stream: true })
    for await (const _ of s);
  })
  await expect('responses', 'openai.responses', () =>
    openai.responses.create({ model: 'gpt-4o', input: 'hi' }),
  )
  await expect('responses stream', 'openai.responses', async () => {
    const s = await openai.responses.create({ model: 'gpt-4o', input: 'hi', stream: true })
    for await (const _ of s);
  })
  await expect(
    'embeddings',
    'openai.embeddings',
    () => openai.embeddings.create({ model: 'gpt-4o', input: 'hi' }),
    0,
  )
  await expect('messages', 'anthropic.messages', () =>
    anthropic.messages.create({ model: 'claude-test-small', max_tokens: 100, messages: MESSAGES }),
  )
  await expect('messages stream', 'anthropic.messages', async () => {
    const s = await anthropic.messages.create({
      model: 'claude-test-small',
      max_tokens: 100,
      messages: MESSAGES,
      stream: true,
    })
    for await (const _ of s);
  })
  t.ok(
    events.every(
      (e) =>
        e.subject === 'spiffe://example.org/agent' &&
        // The gateway's two providers (helpers/llm-gateway.ts), one per API style.
        e.provider === (e.api.startsWith('anthropic.') ? 'local-anthropic' : 'local') &&
        e.status === 200,
    ),
    'each call is reported once, for its subject and the provider that served it',
  )
  t.ok(
    events.filter((e) => e.api !== 'openai.embeddings' && e.durationMs > 0).length > 0,
    'durations are reported',
  )
  const streamed = events.filter((e) => e.timeToFirstTokenMs !== undefined)
  t.equal(streamed.length, 4, 'time to first token for each stream')

  // The audit log has an llm.usage line per call.
  await waitFor(
    () => gw.audit.filter((l) => l.includes('"llm.usage"')).length === events.length,
    'audit lines',
  )
  const line = JSON.parse(gw.audit.find((l) => l.includes('"anthropic.messages"')) as string)
  t.match(line, {
    kind: 'llm.usage',
    subject: 'spiffe://example.org/agent',
    api: 'anthropic.messages',
    model: 'claude-test-small',
    provider: 'local',
    tokensIn: 11,
    tokensOut: 5,
    estimated: false,
  })

  // Metrics: tokens by model (unconfigured models are `other`), kind and source; TTFT histogram.
  const admin = gw.sidecar.addresses.admin
  const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text()
  t.match(text, /svidecar_llm_tokens_total\{model="other",kind="input",source="exact"\} 99/)
  t.match(text, /svidecar_llm_tokens_total\{model="other",kind="output",source="exact"\} 40/)
  t.match(text, /svidecar_llm_time_to_first_token_seconds_count\{model="other"\} 4/)
  t.notMatch(text, /model="gpt-4o"/, 'a model the config does not name is never a label value')
})

t.test(
  'include_usage: added for a client that did not ask and its chunk hidden; kept for one that asked',
  async (t) => {
    const { openai, upstream, events } = await setup(t)
    const stream = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES, stream: true })
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = []
    for await (const c of stream) chunks.push(c)
    const sent = upstream.received.at(-1)
    t.match(
      sent?.body,
      { stream: true, stream_options: { include_usage: true } },
      'the upstream was asked for usage',
    )
    // Byte-identical apart from the splice: the client's own serialisation before it.
    const raw = sent?.raw.toString() ?? ''
    t.equal(raw.endsWith(',"stream_options":{"include_usage":true}}'), true)
    t.equal(sent?.headers['content-length'], String(sent?.raw.length))
    t.ok(chunks.length > 0)
    t.ok(
      chunks.every((c) => c.choices.length > 0),
      'no choices:[] usage chunk reached a client that did not ask',
    )
    t.ok(chunks.every((c) => !c.usage))
    await waitFor(() => events.length === 1, 'usage event')
    t.match(events[0], { outputTokens: 5, estimated: false })

    const asked = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: MESSAGES,
      stream: true,
      stream_options: { include_usage: true },
    })
    const mine: OpenAI.Chat.Completions.ChatCompletionChunk[] = []
    for await (const c of asked) mine.push(c)
    const last = mine.at(-1)
    t.same(last?.choices, [], 'the client that asked gets its usage chunk')
    t.equal(last?.usage?.completion_tokens, 5)
  },
)

t.test('every event reaches the client before the upstream sends the next one', async (t) => {
  const seen = { openai: 0, anthropic: 0 }
  let which: 'openai' | 'anthropic' = 'openai'
  const { openai, anthropic } = await setup(t, {
    tokens: 6,
    // Event i is written only once the client has read event i-1 through the sidecar.
    gate: (i) => (i === 0 ? undefined : waitFor(() => seen[which] >= i, `client saw event ${i - 1}`, 10_000)),
  })
  const s = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES, stream: true })
  for await (const c of s) if (c.choices[0]?.delta.content) seen.openai++
  t.equal(seen.openai, 6)
  which = 'anthropic'
  const a = await anthropic.messages.create({
    model: 'claude-test-small',
    max_tokens: 100,
    messages: MESSAGES,
    stream: true,
  })
  for await (const e of a) if (e.type === 'content_block_delta') seen.anthropic++
  t.equal(seen.anthropic, 6)
})

t.test('a stream that breaks gets an estimate marked as such', async (t) => {
  // Spread over time so the three events leave the upstream before it drops the connection.
  const { openai, anthropic, events } = await setup(t, { tokens: 8, breakAfter: 3, intervalMs: 5 })
  const s = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES, stream: true })
  let got = 0
  await t.rejects(async () => {
    for await (const c of s) if (c.choices[0]?.delta.content) got++
  })
  // The upstream drops its socket with the last write possibly unsent: count what arrived.
  t.ok(got >= 1 && got <= 3, 'the client saw the events before the break')
  await waitFor(() => events.length === 1, 'usage event')
  t.match(
    events[0],
    { estimated: true, estimateReason: 'NO_USAGE', outputTokens: got },
    'one token per word seen',
  )
  t.ok((events[0]?.inputTokens ?? 0) > 0, 'input estimated from the request')
  const a = await anthropic.messages.create({
    model: 'claude-test-small',
    max_tokens: 100,
    messages: MESSAGES,
    stream: true,
  })
  let words = 0
  await t.rejects(async () => {
    for await (const e of a) if (e.type === 'content_block_delta') words++
  })
  await waitFor(() => events.length === 2, 'usage event')
  t.match(events[1], { estimated: true, inputTokens: 11, outputTokens: words }, 'Anthropic input stays exact')
})

t.test(
  'malformed usage from a provider: the response passes unchanged, the count is an estimate with the reason',
  async (t) => {
    const { openai, anthropic, events } = await setup(t, { malformedUsage: true, tokens: 4 })
    const done = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES })
    t.equal(done.choices[0]?.message.content, 'tok tok tok tok', 'the client got the whole answer')
    const s = await anthropic.messages.create({
      model: 'claude-test-small',
      max_tokens: 100,
      messages: MESSAGES,
      stream: true,
    })
    for await (const _ of s);
    const c = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES, stream: true })
    for await (const _ of c);
    await waitFor(() => events.length === 3, 'usage events')
    for (const e of events)
      t.match(e, { estimated: true, estimateReason: 'MALFORMED_USAGE', status: 200 }, e.api)
    t.equal(events[1]?.outputTokens, 4, 'output estimated from the text that passed')
  },
)

t.test(
  'an SSE event over the cap ends the stream with an error frame instead of being buffered',
  async (t) => {
    const { openai, anthropic, upstream, events } = await setup(t, { tokens: 4, bigEventBytes: 1_200_000 })
    const s = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES, stream: true })
    let words = 0
    const err = await (async () => {
      try {
        for await (const c of s) if (c.choices[0]?.delta.content) words++
      } catch (e) {
        return e
      }
      return undefined
    })()
    t.ok(err instanceof OpenAI.APIError, 'the SDK throws')
    t.equal((err as InstanceType<typeof OpenAI.APIError>).code, 'SVD_UPSTREAM_PROTOCOL')
    t.equal(words, 1, 'the event before the oversized one arrived')
    await waitFor(() => events.length === 1, 'usage event')
    t.match(events[0], { estimated: true, estimateReason: 'EVENT_TOO_LARGE', code: 'SVD_UPSTREAM_PROTOCOL' })
    await waitFor(() => upstream.openStreams === 0, 'the upstream request closed')

    const a = await anthropic.messages.create({
      model: 'claude-test-small',
      max_tokens: 100,
      messages: MESSAGES,
      stream: true,
    })
    const aErr = await (async () => {
      try {
        for await (const _ of a);
      } catch (e) {
        return e
      }
      return undefined
    })()
    t.ok(aErr instanceof Anthropic.APIError, 'the Anthropic SDK throws too')
    t.match((aErr as InstanceType<typeof Anthropic.APIError>).error, {
      type: 'error',
      error: { type: 'api_error', details: { error_code: 'SVD_UPSTREAM_PROTOCOL' } },
    })
  },
)

t.test('an SSE body sent with a content-length can still lose its hidden usage chunk', async (t) => {
  // A server that buffers its stream and sends it with a length (some self-hosted ones do): a plain http server,
  // since the model server helper always streams chunked.
  const { createServer } = await import('node:http')
  const chunk = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`
  const wire =
    chunk({
      id: 'c',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'gpt-4o',
      choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: 'stop' }],
      usage: null,
    }) +
    chunk({
      id: 'c',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'gpt-4o',
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
    }) +
    'data: [DONE]\n\n'
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-length': Buffer.byteLength(wire) })
      res.end(wire)
    })
  })
  server.listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  t.teardown(() => server.close())
  const port = (server.address() as { port: number }).port
  const gw = await startGateway(t, await startDevApi(t), `http://127.0.0.1:${port}`)
  const events = usageEvents(t)
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'dummy', maxRetries: 0 })
  const s = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES, stream: true })
  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = []
  for await (const c of s) chunks.push(c)
  t.equal(chunks.length, 1, 'the stream completed without the usage chunk')
  // The SDK stops reading at [DONE]; a plain client reads to the end, which the upstream's length would forbid.
  const raw = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o', messages: MESSAGES, stream: true }),
  })
  t.equal(raw.headers.get('content-length'), null, "the upstream's length is not passed on")
  const text = await raw.text()
  t.ok(
    text.endsWith('data: [DONE]\n\n') && !text.includes('"choices":[]'),
    'the whole body, without the usage chunk',
  )
  await waitFor(() => events.length === 2, 'usage events')
  t.match(events[0], { inputTokens: 3, outputTokens: 1, estimated: false })
})
