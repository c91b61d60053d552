// stream_options.include_usage through the openai SDK for every way a client can leave it off (absent, `{}`,
// `include_usage: false`, chat and legacy completions): the provider is asked for usage, the usage chunk never
// reaches the client, and the tokens are counted exactly.
import OpenAI from 'openai'
import t from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { type LlmUsageEvent, on } from '../../src/observe/events.ts'
import { startDevApi, startGateway } from '../helpers/llm-gateway.ts'
import { startLlmUpstream } from '../helpers/llm-upstream.ts'

t.test(
  'include_usage left off in any way: asked for upstream, hidden from the client, counted',
  async (t) => {
    const upstream = await startLlmUpstream({ tokens: 4, inputTokens: 9 })
    t.teardown(() => upstream.close())
    const gw = await startGateway(t, await startDevApi(t), upstream.url)
    const events: LlmUsageEvent[] = []
    t.teardown(on('llmUsage', (e) => events.push(e)))
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'dummy', maxRetries: 0 })
    const messages = [{ role: 'user' as const, content: 'hi' }]
    const variants: [string, OpenAI.Chat.Completions.ChatCompletionStreamOptions | undefined][] = [
      ['absent', undefined],
      ['{}', {}],
      ['include_usage: false', { include_usage: false }],
    ]
    for (const [what, options] of variants) {
      const stream = await openai.chat.completions.create({
        model: 'gpt-4o',
        messages,
        stream: true,
        ...(options === undefined ? {} : { stream_options: options }),
      })
      const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = []
      for await (const c of stream) chunks.push(c)
      t.match(upstream.received.at(-1)?.body, { stream_options: { include_usage: true } }, `${what}: asked`)
      t.ok(
        chunks.length > 0 && chunks.every((c) => c.choices.length > 0 && !c.usage),
        `${what}: no usage chunk reached the client`,
      )
    }
    const completion = await openai.completions.create({ model: 'gpt-4o', prompt: 'hi', stream: true })
    const parts: OpenAI.Completions.Completion[] = []
    for await (const c of completion) parts.push(c)
    t.match(upstream.received.at(-1)?.body, { stream_options: { include_usage: true } }, 'completions: asked')
    t.ok(
      parts.every((c) => c.choices.length > 0 && !c.usage),
      'completions: no usage chunk reached the client',
    )
    await waitFor(() => events.length === 4, 'usage events')
    for (const e of events) t.match(e, { inputTokens: 9, outputTokens: 4, estimated: false }, e.api)
  },
)
