// The tokenizer runs in a worker thread so that its tables (~17 MB of small objects) stay off the sidecar's heap,
// where every mark-compact traced them. Counts are the same as gpt-tokenizer's own, however many texts one call
// carries and however large they are.
import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import {
  estimateInput,
  estimateText,
  estimateTexts,
  loadTokenizer,
} from '../../src/lens/llm/usage/estimate.ts'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function heapUsed(): number {
  gc()
  gc()
  return getHeapStatistics().used_heap_size
}

t.test("the tokenizer's tables are not on this thread's heap", async (t) => {
  const before = heapUsed()
  await loadTokenizer()
  const n = estimateText('hello '.repeat(10))
  // Characters / 4 (the stand-in) would be 15; o200k reads each "hello " as about one token.
  t.ok(n >= 10 && n <= 11, `the tokenizer answers: ${n}`)
  const grown = heapUsed() - before
  // In this thread the tables took ~17 MB (bench/RESULTS.md); the worker's handle and channel views take little.
  t.ok(grown < 4 * 1024 * 1024, `this heap grew ${(grown / 1e6).toFixed(1)} MB with the tokenizer loaded`)
})

t.test("counts are gpt-tokenizer's own", async (t) => {
  await loadTokenizer()
  const { countTokens } = await import('gpt-tokenizer')
  const texts = [
    'hello there',
    ' .'.repeat(500),
    '漢字かな交じり文、トークンは多い。'.repeat(20),
    '😀👍🏽🇫🇷'.repeat(40),
    '\u0000\u0001\u001f\t\n\r'.repeat(30),
  ]
  for (const text of texts) t.equal(estimateText(text), countTokens(text), JSON.stringify(text.slice(0, 12)))
  t.equal(
    estimateTexts(texts),
    texts.reduce((sum, text) => sum + countTokens(text), 0),
    'many texts in one call: the sum of their counts',
  )
})

t.test('a call with more texts than one exchange holds is split, in order', async (t) => {
  await loadTokenizer()
  const texts = Array.from({ length: 10_000 }, (_, i) => (i % 3 === 0 ? ` token${i}` : ' word'))
  let each = 0
  for (const text of texts) each += estimateText(text)
  t.equal(estimateTexts(texts), each)
})

t.test('texts larger together than the shared memory are sent in turns', async (t) => {
  await loadTokenizer()
  // 200 Ki characters of 3-byte UTF-8 each: two of them do not fit in one exchange.
  const big = [`${'漢'.repeat(200 * 1024)}`, `${'字'.repeat(200 * 1024)}`, 'tail']
  let each = 0
  for (const text of big) each += estimateText(text)
  t.equal(estimateTexts(big), each)
  t.ok(each > 0)
})

t.test('a prompt is counted the same whether its parts come from the cache or the tokenizer', async (t) => {
  await loadTokenizer()
  const body = Buffer.from(
    JSON.stringify({
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: 'You are a careful assistant. '.repeat(20) },
        { role: 'user', content: 'hello '.repeat(300) },
      ],
    }),
  )
  const first = estimateInput(body)
  t.equal(estimateInput(body), first, 'again, from the cache')
  t.ok(first > 300)
})
