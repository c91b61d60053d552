// The token estimates' cheap upper bounds (what lets the meter and the budget skip the tokenizer) hold on text
// built to break them, the estimate reads a special token's spelling as the plain text it is, and the SSE framer's
// native line search splits exactly as a byte-by-byte scan does.
import t from 'tap'
import {
  estimateInput,
  estimateText,
  inputTokensAtMost,
  loadTokenizer,
  textTokensAtMost,
} from '../../src/lens/llm/usage/estimate.ts'
import { UsageMeter } from '../../src/lens/llm/usage/meter.ts'
import { SseFrames } from '../../src/lens/llm/usage/sse-frames.ts'

await loadTokenizer()

const TEXTS = [
  '',
  'hello there',
  ' .'.repeat(500),
  '1234567890'.repeat(50),
  '漢字かな交じり文、トークンは多い。'.repeat(20),
  '😀👍🏽🇫🇷'.repeat(40),
  '\ud800 lone \udfff surrogates \ud83d',
  '<|endoftext|> and <|endofprompt|> as text',
  '\u0000\u0001\u001f\t\n\r'.repeat(30),
  // Past the tokenizer's cap (the rest counted by length).
  'word '.repeat(60_000),
  // One unbroken run of letters, counted in slices.
  `a ${'x'.repeat(5000)} b`,
]

t.test('a text never counts as more tokens than its UTF-8 bytes', async (t) => {
  for (const text of TEXTS) {
    const n = estimateText(text)
    t.ok(
      n <= textTokensAtMost(text),
      `${n} <= ${textTokensAtMost(text)} for ${JSON.stringify(text.slice(0, 20))}`,
    )
  }
})

t.test('a long unbroken run is counted in slices, close to the whole count', async (t) => {
  // Counted whole, BPE's cost grows with the square of the run (64 Ki letters take minutes): sliced, it returns.
  const run = 'x'.repeat(64 * 1024)
  const n = estimateText(run)
  t.ok(n > 0 && n <= textTokensAtMost(run), `${n} tokens for ${run.length} letters`)
  const mixed = `intro ${'ab'.repeat(300)} outro`
  const whole = estimateText(`intro ${'ab'.repeat(100)} outro`)
  t.ok(estimateText(mixed) >= whole, 'a sliced run counts no fewer tokens than a shorter one')
  t.equal(estimateText('hello world'), 2, 'a text without long runs is counted whole, as before')
})

t.test('a special token spelled in a text is counted as text, not thrown', async (t) => {
  t.ok(estimateText('say <|endoftext|> please') > 3)
  t.ok(estimateInput(Buffer.from('{"messages":[{"role":"user","content":"<|endoftext|>"}]}')) > 1)
})

t.test('a request body bounds its prompt estimate, escapes and broken UTF-8 included', async (t) => {
  const bodies: Buffer[] = [
    Buffer.alloc(0),
    Buffer.from('not json at all'),
    Buffer.from('[1,2,3]'),
    ...TEXTS.map((text) =>
      Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: text }] })),
    ),
    // Escapes that decode to more UTF-8 than an ASCII reading of them suggests.
    Buffer.from(`{"messages":[{"content":"${'\\ud83d\\ude00\\u00e9\\n'.repeat(100)}"}]}`),
    Buffer.from(`{"system":"${'\\ud800'.repeat(100)}","input":["a","b","c"],"prompt":"${'é'.repeat(50)}"}`),
    // Bytes that are not UTF-8 inside a string: each decodes to U+FFFD, three bytes of text.
    Buffer.concat([Buffer.from('{"prompt":"'), Buffer.alloc(500, 0xff), Buffer.from('"}')]),
    Buffer.concat([Buffer.from('{"prompt":"'), Buffer.alloc(500, 0xc3), Buffer.from('"}')]),
    Buffer.from(JSON.stringify({ tools: [{ a: ['x', 'y', { b: 'z'.repeat(40) }] }], instructions: '' })),
  ]
  for (const body of bodies) {
    const n = estimateInput(body)
    t.ok(n <= inputTokensAtMost(body), `${n} <= ${inputTokensAtMost(body)} for ${body.subarray(0, 24)}`)
    t.equal(estimateInput(body), n, 'the same body, counted again (from the cache), gives the same figure')
  }
})

t.test('a prompt is its strings counted one by one, plus one token between them', async (t) => {
  const system = 'You are a careful planner. '.repeat(40)
  const history = ['first question?', 'a long answer. '.repeat(30), 'next question']
  const body = (msgs: string[]) =>
    Buffer.from(
      JSON.stringify({
        model: 'm',
        system,
        messages: msgs.map((content, i) => ({ role: i % 2 ? 'assistant' : 'user', content })),
      }),
    )
  const parts = (msgs: string[]) => [system, ...msgs.flatMap((c, i) => [i % 2 ? 'assistant' : 'user', c])]
  const expected = (msgs: string[]) =>
    parts(msgs).reduce((sum, p) => sum + estimateText(p), parts(msgs).length - 1)
  t.equal(estimateInput(body(history.slice(0, 1))), expected(history.slice(0, 1)))
  // The next turn resends the system prompt and the history: same rule, whatever came from the cache.
  t.equal(estimateInput(body(history)), expected(history))
  t.equal(estimateInput(body([...history, 'more'])), expected([...history, 'more']))
})

t.test('the meter counts output text only when asked, to the same figure, bounded before', async (t) => {
  const pieces = ['Hello', ' world', ', ', '漢字', ' 😀', ' <|endoftext|>', ' .'.repeat(30)]
  const events = pieces.map((content) =>
    Buffer.from(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }], usage: null })}\n\n`),
  )
  const m = new UsageMeter({
    api: 'openai.chat',
    status: 200,
    contentType: 'text/event-stream',
    hideUsageChunk: false,
    maxEventBytes: 4096,
    requestBody: Buffer.from('{"model":"m","messages":[{"role":"user","content":"hi"}]}'),
    started: performance.now(),
  })
  let expected = 0
  for (const [i, ev] of events.entries()) {
    t.same(m.data(ev), ev, 'every event passes as it came')
    expected += estimateText(pieces[i] as string)
    t.ok(m.tokensSoFarAtMost >= expected, 'the bound is never below the count')
    if (i % 2 === 1) t.equal(m.tokensSoFar, expected, 'the count is the sum of each piece counted on its own')
  }
  t.match(m.finish(), { estimated: true, reason: 'NO_USAGE', outputTokens: expected })
})

// The framer as it was, byte by byte: the reference the native line search must match, chunk for chunk.
class ByteByByteFrames {
  held: Buffer[] = []
  lineLen = 0
  lastCR = false
  push(chunk: Buffer): Buffer[] {
    const events: Buffer[] = []
    let from = 0
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]
      if (c === 0x0a && this.lastCR) {
        this.lastCR = false
        continue
      }
      this.lastCR = c === 0x0d
      if (c !== 0x0a && c !== 0x0d) {
        this.lineLen++
        continue
      }
      if (this.lineLen > 0) {
        this.lineLen = 0
        continue
      }
      let end = i + 1
      if (c === 0x0d && chunk[end] === 0x0a) {
        end++
        i++
        this.lastCR = false
      }
      events.push(Buffer.concat([...this.held, chunk.subarray(from, end)]))
      this.held = []
      from = end
    }
    if (from < chunk.length) this.held.push(Buffer.from(chunk.subarray(from)))
    return events
  }
}

t.test('SSE frames: random events, line endings and chunkings split as byte by byte', async (t) => {
  let seed = 7
  const rand = (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
    return seed % n
  }
  const endings = ['\n', '\r', '\r\n']
  for (let round = 0; round < 300; round++) {
    let wire = ''
    for (let e = 0; e < 1 + rand(6); e++) {
      for (let l = 0; l < 1 + rand(3); l++) wire += `data: ${'x'.repeat(rand(40))}${endings[rand(3)]}`
      wire += endings[rand(3)]
    }
    const bytes = Buffer.from(wire, 'latin1')
    const f = new SseFrames(1 << 20)
    const ref = new ByteByByteFrames()
    for (let i = 0; i < bytes.length; ) {
      const chunk = bytes.subarray(i, i + 1 + rand(50))
      const got = f.push(chunk).events.map((e) => e.toString('latin1'))
      const want = ref.push(chunk).map((e) => e.toString('latin1'))
      if (got.join('|') !== want.join('|')) {
        t.fail(`round ${round} at byte ${i}: ${JSON.stringify(wire)}`)
        return
      }
      i += chunk.length
    }
  }
  t.pass('300 random streams framed alike, chunk for chunk')
})
