// Token accounting pieces on their own: the include_usage splice keeps every other byte, the SSE framer
// splits at blank lines whatever the chunking, and the meter reads each API's usage rules.
import t from 'tap'
import { loadTokenizer } from '../../src/lens/llm/usage/estimate.ts'
import { includeUsage } from '../../src/lens/llm/usage/include-usage.ts'
import { UsageMeter } from '../../src/lens/llm/usage/meter.ts'
import { SseFrames } from '../../src/lens/llm/usage/sse-frames.ts'

t.test('include_usage is spliced into the bytes, the rest stays byte-identical', async (t) => {
  const cases: Array<[string, string]> = [
    [
      '{"model":"gpt-4o","stream":true}',
      '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}',
    ],
    ['{}', '{"stream_options":{"include_usage":true}}'],
    [
      '{ "model" : "gpt-4o",\n  "n": 1.50e3, "x":"é\\"}", "stream": true }\n',
      '{ "model" : "gpt-4o",\n  "n": 1.50e3, "x":"é\\"}", "stream": true ,"stream_options":{"include_usage":true}}\n',
    ],
    [
      '{"stream_options":{"foo":[1,{"b":"}"}]},"stream":true}',
      '{"stream_options":{"include_usage":true,"foo":[1,{"b":"}"}]},"stream":true}',
    ],
    ['{"stream_options":{},"stream":true}', '{"stream_options":{"include_usage":true},"stream":true}'],
    [
      '{"stream_options":{"include_usage":false},"stream":true}',
      '{"stream_options":{"include_usage":true},"stream":true}',
    ],
    ['{"stream_options":null,"stream":true}', '{"stream_options":{"include_usage":true},"stream":true}'],
  ]
  for (const [input, want] of cases) {
    const r = includeUsage(Buffer.from(input))
    t.equal(r.kind, 'spliced', input)
    if (r.kind === 'spliced') {
      t.equal(r.body.toString(), want, input)
      t.doesNotThrow(() => JSON.parse(r.body.toString()))
    }
  }
  t.same(includeUsage(Buffer.from('{"stream":true,"stream_options":{"include_usage":true}}')), {
    kind: 'asked',
  })
  for (const bad of ['[1]', 'not json', '{"a":', '{"a":1} trailing', ''])
    t.same(includeUsage(Buffer.from(bad)), { kind: 'unreadable' }, bad)
})

t.test('SSE frames: whole events at blank lines, any chunking, any line ending; the cap holds', async (t) => {
  const wire = 'data: a\n\nevent: x\r\ndata: b\r\n\r\n: comment\rdata: c\r\rdata: d\n\n'
  const whole = ['data: a\n\n', 'event: x\r\ndata: b\r\n\r\n', ': comment\rdata: c\r\r', 'data: d\n\n']
  for (const size of [1, 2, 3, 5, 7, wire.length]) {
    const f = new SseFrames(1024)
    const got: string[] = []
    let pending = ''
    for (let i = 0; i < wire.length; i += size) {
      const { events } = f.push(Buffer.from(wire.slice(i, i + size)))
      for (const e of events) got.push(e.toString())
    }
    pending = got.join('')
    t.equal(pending, wire, `bytes kept at chunk size ${size}`)
    // A \r\n split across chunks may leave its \n at the head of the next event; the bytes are the same.
    t.equal(got.length, 4, `four events at chunk size ${size}`)
    if (size >= 4) t.same(got, whole)
  }
  const f = new SseFrames(16)
  t.equal(f.push(Buffer.from('data: 0123456789')).overflow, false)
  t.equal(f.push(Buffer.from('abcdef')).overflow, true, 'an event over the cap overflows')
})

// The sidecar loads the tokenizer on its first LLM call; these tests check its counts.
await loadTokenizer()
const started = performance.now()
function meter(
  api: 'openai.chat' | 'openai.responses' | 'anthropic.messages',
  opts: { hide?: boolean } = {},
) {
  return new UsageMeter({
    api,
    status: 200,
    contentType: 'text/event-stream; charset=utf-8',
    hideUsageChunk: opts.hide ?? false,
    maxEventBytes: 4096,
    requestBody: Buffer.from('{"model":"m","messages":[{"role":"user","content":"hello there"}]}'),
    started,
  })
}
const sse = (data: unknown, event?: string) =>
  Buffer.from(`${event === undefined ? '' : `event: ${event}\n`}data: ${JSON.stringify(data)}\n\n`)

t.test(
  'OpenAI chat: usage chunk counted, hidden when the sidecar asked, kept when the client did',
  async (t) => {
    const usageChunk = sse({
      choices: [],
      usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
    })
    const content = sse({ choices: [{ index: 0, delta: { content: 'hi there' } }], usage: null })
    for (const hide of [true, false]) {
      const m = meter('openai.chat', { hide })
      t.same(m.data(content), content)
      const out = m.data(Buffer.concat([usageChunk, Buffer.from('data: [DONE]\n\n')]))
      t.equal(out.toString(), hide ? 'data: [DONE]\n\n' : `${usageChunk}data: [DONE]\n\n`)
      t.same(m.finish(), { inputTokens: 7, outputTokens: 3, estimated: false })
      t.type(m.timeToFirstTokenMs, 'number')
    }
    // Cut short: no usage chunk. Input estimated from the request, output from the text seen.
    const m = meter('openai.chat')
    m.data(content)
    const u = m.finish()
    t.equal(u.estimated, true)
    t.equal(u.reason, 'NO_USAGE')
    t.ok(u.inputTokens > 0)
    t.equal(u.outputTokens, 2, '"hi there" is two tokens')
    // Malformed usage: estimate, with the reason.
    const bad = meter('openai.chat')
    bad.data(content)
    bad.data(sse({ choices: [], usage: { prompt_tokens: -1, completion_tokens: 'x' } }))
    t.match(bad.finish(), { estimated: true, reason: 'MALFORMED_USAGE', outputTokens: 2 })
  },
)

t.test('Responses API: usage on response.completed', async (t) => {
  const m = meter('openai.responses')
  m.data(sse({ type: 'response.output_text.delta', delta: 'hello' }, 'response.output_text.delta'))
  m.data(
    sse(
      {
        type: 'response.completed',
        response: { usage: { input_tokens: 5, output_tokens: 9, total_tokens: 14 } },
      },
      'response.completed',
    ),
  )
  t.same(m.finish(), { inputTokens: 5, outputTokens: 9, estimated: false })
})

t.test('Anthropic: input from message_start, the latest cumulative message_delta wins', async (t) => {
  const m = meter('anthropic.messages')
  m.data(
    sse(
      {
        type: 'message_start',
        message: {
          usage: {
            input_tokens: 12,
            cache_read_input_tokens: 4,
            cache_creation_input_tokens: 2,
            output_tokens: 1,
          },
        },
      },
      'message_start',
    ),
  )
  m.data(
    sse(
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'abc' } },
      'content_block_delta',
    ),
  )
  m.data(sse({ type: 'message_delta', delta: {}, usage: { output_tokens: 3 } }, 'message_delta'))
  m.data(sse({ type: 'message_delta', delta: {}, usage: { output_tokens: 8 } }, 'message_delta'))
  t.same(m.finish(), {
    inputTokens: 12,
    outputTokens: 8,
    cachedInputTokens: 4,
    cacheWriteInputTokens: 2,
    estimated: false,
  })
  // Aborted after message_start: the input stays exact, the output is estimated.
  const cut = meter('anthropic.messages')
  cut.data(
    sse(
      { type: 'message_start', message: { usage: { input_tokens: 12, output_tokens: 1 } } },
      'message_start',
    ),
  )
  cut.data(
    sse(
      { type: 'content_block_delta', delta: { type: 'text_delta', text: 'one two' } },
      'content_block_delta',
    ),
  )
  t.match(cut.finish(), { inputTokens: 12, outputTokens: 2, estimated: true, reason: 'NO_USAGE' })
})

t.test('an event over the cap ends metering with overflow, whole events before it pass', async (t) => {
  const m = meter('openai.chat')
  const first = sse({ choices: [{ delta: { content: 'a' } }] })
  const out = m.data(Buffer.concat([first, Buffer.from(`data: ${'x'.repeat(5000)}`)]))
  t.ok(!Buffer.isBuffer(out))
  if (!Buffer.isBuffer(out)) t.equal(out.overflow.toString(), first.toString())
  t.match(m.finish(), { estimated: true, reason: 'EVENT_TOO_LARGE' })
})

t.test('JSON bodies: usage per API, and from the tail of a body too large to parse', async (t) => {
  const json = (
    api: 'openai.chat' | 'openai.embeddings' | 'anthropic.messages',
    body: string,
    max = 4096,
  ) => {
    const m = new UsageMeter({
      api,
      status: 200,
      contentType: 'application/json',
      hideUsageChunk: false,
      maxEventBytes: max,
      requestBody: undefined,
      started,
    })
    for (let i = 0; i < body.length; i += 100) m.data(Buffer.from(body.slice(i, i + 100)))
    return m.finish()
  }
  t.same(
    json('openai.chat', '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}'),
    {
      inputTokens: 3,
      outputTokens: 4,
      estimated: false,
    },
  )
  t.same(json('anthropic.messages', '{"content":[],"usage":{"input_tokens":3,"output_tokens":4}}'), {
    inputTokens: 3,
    outputTokens: 4,
    estimated: false,
  })
  const big = `{"data":[{"embedding":[${Array.from({ length: 3000 }, () => '0.125').join(',')}]}],"usage":{"prompt_tokens":9,"total_tokens":9}}`
  t.same(json('openai.embeddings', big, 1024), { inputTokens: 9, outputTokens: 0, estimated: false })
  t.match(json('openai.chat', '{"choices":[]}'), { estimated: true, reason: 'NO_USAGE' })
})
