// The stdio line framing and the SSE reader of the bridges: chunk boundaries, line endings, and caps
// that drop an oversized message without buffering it and pick up again at the next boundary.
import t from 'tap'
import { trailingId } from '../src/mcp-bridge/jsonrpc.ts'
import { LineSplitter, type OversizedLine } from '../src/mcp-bridge/lines.ts'
import { type SseEvent, SseReader } from '../src/mcp-bridge/sse.ts'

function splitter(max: number) {
  const lines: string[] = []
  const oversized: OversizedLine[] = []
  const s = new LineSplitter(max, { line: (l) => lines.push(l), oversized: (o) => oversized.push(o) })
  return { s, lines, oversized }
}

t.test('lines split across chunks, CRLF, blank lines and a last line without a newline', async (t) => {
  const { s, lines } = splitter(1024)
  for (const piece of ['{"a":', '1}\r\n\n', '{"b":2}\n{"c"', ':3}']) s.push(Buffer.from(piece))
  t.same(lines, ['{"a":1}', '{"b":2}'])
  s.end()
  t.same(lines, ['{"a":1}', '{"b":2}', '{"c":3}'])
})

t.test('a multi-byte character split between chunks stays whole', async (t) => {
  const { s, lines } = splitter(1024)
  const bytes = Buffer.from('{"x":"é€"}\n')
  s.push(bytes.subarray(0, 7))
  s.push(bytes.subarray(7))
  t.same(lines, ['{"x":"é€"}'])
})

t.test(
  'an oversized line is reported once with its head and tail, and the next line is read whole',
  async (t) => {
    const { s, lines, oversized } = splitter(64)
    const start = `{"result":"${'x'.repeat(50)}`
    const end = '","jsonrpc":"2.0","id":42}'
    s.push(Buffer.from(start))
    s.push(Buffer.from('y'.repeat(10_000)))
    s.push(Buffer.from(`${end}\n{"ok":true}\n`))
    t.equal(oversized.length, 1)
    t.equal(oversized[0]?.bytes, start.length + 10_000 + end.length)
    t.ok((oversized[0]?.head.length ?? 0) <= 256, 'only the start is kept')
    t.equal(trailingId(oversized[0]?.tail ?? ''), 42, 'the id is read off the end')
    t.same(lines, ['{"ok":true}'])
  },
)

t.test('trailingId only takes an id that ends the message', async (t) => {
  t.equal(trailingId('..."jsonrpc":"2.0","id":"a\\"b"}'), 'a"b')
  t.equal(trailingId('..."id":7,"more":1}'), undefined)
  t.equal(trailingId('..."id":1.5}'), undefined)
})

function reader(max: number) {
  const events: SseEvent[] = []
  const oversized: number[] = []
  const retries: number[] = []
  const r = new SseReader(max, {
    event: (e) => events.push(e),
    oversized: (n) => oversized.push(n),
    retry: (ms) => retries.push(ms),
  })
  const push = (s: string) => r.push(new TextEncoder().encode(s))
  return { r, push, events, oversized, retries }
}

t.test('SSE: events across chunks, any line ending, comments, ids, retry, multi-line data', async (t) => {
  const { r, push, events, retries } = reader(1024)
  push('\uFEFF: keepalive\n\nid: 1\nevent: message\ndata: {"a"')
  push(':1}\r')
  push('\n\rdata: line1\rdata:line2\r\rretry: 3000\nid: 2\ndata: x\n')
  t.equal(events.length, 2)
  push('\n')
  t.same(events, [
    { event: 'message', data: '{"a":1}', id: '1' },
    { event: 'message', data: 'line1\nline2', id: '1' },
    { event: 'message', data: 'x', id: '2' },
  ])
  t.same(retries, [3000])
  t.equal(r.lastEventId, '2')
})

t.test('SSE: an event over the cap is dropped whole and the next one arrives', async (t) => {
  const { push, events, oversized } = reader(100)
  push(`data: ${'x'.repeat(60)}\n`)
  push(`data: ${'y'.repeat(60)}\n\n`)
  push('data: small\n\n')
  t.equal(oversized.length, 1)
  t.same(
    events.map((e) => e.data),
    ['small'],
  )
  push('data: ')
  push('z'.repeat(500))
  push('\n\ndata: after\n\n')
  t.equal(oversized.length, 2, 'a line that never ends is capped too')
  t.same(
    events.map((e) => e.data),
    ['small', 'after'],
  )
})
