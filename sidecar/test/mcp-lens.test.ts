// The MCP lens's parts on their own: the response filter over SSE streams cut at every byte, id-only events,
// comments and retry fields, caps; a decision service answering asynchronously; the session table's bounds
// and expiry; mirrored header values.
import t from 'tap'
import { listFilterWrapper, type PendingLists } from '../src/lens/mcp/response.ts'
import { SessionTable } from '../src/lens/mcp/sessions.ts'
import { decodeHeaderValue } from '../src/lens/mcp/transports.ts'
import type { ResponseWrapper } from '../src/pipeline/stage.ts'
import type { PolicyResource } from '../src/policy/engine.ts'

const pending: PendingLists = new Map([['number:1', { id: 1, method: 'tools/list' as const }]])
const keep = (r: PolicyResource) => r.kind === 'mcp.tool' && r.name !== 'secret'
const listResult = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  result: { tools: [{ name: 'echo' }, { name: 'secret' }], nextCursor: 'c2' },
})

async function run(w: ResponseWrapper, chunks: Buffer[]): Promise<string> {
  let out = ''
  for (const c of chunks) out += (await w.data?.(c))?.toString() ?? ''
  out += (await w.end?.())?.toString() ?? ''
  return out
}

const sse = (type = 'text/event-stream') => ({ status: 200, headers: { 'content-type': type } })

t.test(
  'SSE: the list answer is filtered however the stream is cut; other events pass as they are',
  async (t) => {
    const stream = [
      'id: prime\ndata: \n\n',
      ': keep-alive\n\n',
      'retry: 500\n\n',
      'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n',
      `id: e2\r\ndata: ${listResult}\r\n\r\n`,
      'id: only-an-id\n\n',
      'data: {"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"secret"}]}}\n\n',
    ].join('')
    const bytes = Buffer.from(stream)
    const expected = await run(listFilterWrapper(sse(), pending, keep, 1 << 20) as ResponseWrapper, [bytes])
    t.match(expected, /id: prime\ndata: \n\n/, 'the priming event keeps its id and empty data')
    t.match(expected, /:.?keep-alive\n\n/)
    t.match(expected, /retry: 500\n\n/)
    t.match(expected, /notifications\/progress/)
    t.match(expected, /id: only-an-id\n\n/, 'an id-only block stays a resumption point')
    const filtered = /id: e2\ndata: (.*)\n\n/.exec(expected)?.[1] ?? ''
    t.same(
      JSON.parse(filtered),
      {
        jsonrpc: '2.0',
        id: 1,
        result: { tools: [{ name: 'echo' }], nextCursor: 'c2' },
      },
      'filtered, the cursor passed through',
    )
    t.match(
      expected,
      /"id":5,"result":\{"tools":\[\{"name":"secret"\}\]\}/,
      'an answer to no list request of this POST is not touched',
    )
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const w = listFilterWrapper(sse(), pending, keep, 1 << 20) as ResponseWrapper
      t.equal(await run(w, [bytes.subarray(0, cut), bytes.subarray(cut)]), expected, `cut at ${cut}`)
    }
    const oneByOne = listFilterWrapper(sse(), pending, keep, 1 << 20) as ResponseWrapper
    t.equal(
      await run(
        oneByOne,
        [...bytes].map((b) => Buffer.from([b])),
      ),
      expected,
      'one byte at a time',
    )
  },
)

t.test('SSE: an event is written as soon as its block is complete', async (t) => {
  const w = listFilterWrapper(sse(), pending, keep, 1 << 20) as ResponseWrapper
  t.equal(
    String(await w.data?.(Buffer.from('data: {"jsonrpc":"2.0","method":"notifications/message"}\n'))),
    '',
  )
  t.match(String(await w.data?.(Buffer.from('\n'))), /notifications\/message/)
})

t.test('a multi-byte character split across chunks survives', async (t) => {
  const w = listFilterWrapper(sse(), pending, keep, 1 << 20) as ResponseWrapper
  const bytes = Buffer.from(
    'data: {"jsonrpc":"2.0","method":"notifications/message","params":{"text":"é✓"}}\n\n',
  )
  const at = bytes.indexOf(Buffer.from('✓')) + 1
  t.match(await run(w, [bytes.subarray(0, at), bytes.subarray(at)]), /é✓/)
})

t.test('an SSE event over the cap ends the stream with an error for the list request', async (t) => {
  const w = listFilterWrapper(sse(), pending, keep, 1024) as ResponseWrapper
  const out = await run(w, [Buffer.from(`data: ${'x'.repeat(4096)}`), Buffer.from('\n\ndata: later\n\n')])
  t.match(out, /"id":1,"error":\{"code":-32603/)
  t.notMatch(out, /later|xxxx/, 'nothing of or after the oversized event is passed')
})

t.test('JSON: filtered whole, batch answers too; over the cap an error instead', async (t) => {
  const w = listFilterWrapper(
    sse('application/json; charset=utf-8'),
    pending,
    keep,
    1 << 20,
  ) as ResponseWrapper
  t.same(w.headers, { remove: ['content-length'], set: { 'cache-control': 'private' } })
  const half = Math.floor(listResult.length / 2)
  const out = await run(w, [Buffer.from(listResult.slice(0, half)), Buffer.from(listResult.slice(half))])
  t.same(JSON.parse(out).result.tools, [{ name: 'echo' }])
  const batch = listFilterWrapper(sse('application/json'), pending, keep, 1 << 20) as ResponseWrapper
  const both = JSON.parse(
    await run(batch, [Buffer.from(`[${listResult},{"jsonrpc":"2.0","id":2,"result":{}}]`)]),
  )
  t.same(both[0].result.tools, [{ name: 'echo' }])
  t.same(both[1], { jsonrpc: '2.0', id: 2, result: {} })
  const big = listFilterWrapper(sse('application/json'), pending, keep, 64) as ResponseWrapper
  t.match(JSON.parse(await run(big, [Buffer.from(listResult)])), { id: 1, error: { code: -32603 } })
  t.equal(
    listFilterWrapper({ status: 500, headers: {} }, pending, keep, 64),
    undefined,
    'errors pass untouched',
  )
  const modern = listFilterWrapper(sse('application/json'), pending, keep, 1 << 20) as ResponseWrapper
  const scoped = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    result: { tools: [], ttlMs: 1000, cacheScope: 'public' },
  })
  t.equal(
    JSON.parse(await run(modern, [Buffer.from(scoped)])).result.cacheScope,
    'private',
    'cacheScope forced private',
  )
})

t.test('a decision service answering later holds the filtered event, in order', async (t) => {
  const slow = (r: PolicyResource) => new Promise<boolean>((resolve) => setImmediate(() => resolve(keep(r))))
  const w = listFilterWrapper(sse(), pending, slow, 1 << 20) as ResponseWrapper
  const first = w.data?.(Buffer.from(`data: ${listResult}\n\n`))
  t.type(first, Promise)
  t.same(JSON.parse(String(await first).slice('data: '.length)).result.tools, [{ name: 'echo' }])
})

t.test('session table: bound to its creator, bounded, expiring', async (t) => {
  let now = 0
  const table = new SessionTable({ maxSessions: 2, idleTimeoutMs: 1000, now: () => now })
  table.bind('s1', 'spiffe://td/a')
  t.equal(table.check('s1', 'spiffe://td/a'), 'ok')
  t.equal(table.check('s1', 'spiffe://td/b'), 'foreign')
  table.bind('s1', 'spiffe://td/b')
  t.equal(table.check('s1', 'spiffe://td/b'), 'foreign', 'a live binding keeps its first owner')
  table.bind('s2', 'spiffe://td/a')
  t.equal(table.check('s1', 'spiffe://td/a'), 'ok', 'touch s1: s2 is now the oldest')
  table.bind('s3', 'spiffe://td/a')
  t.equal(table.size, 2)
  t.equal(table.check('s2', 'spiffe://td/a'), 'unknown', 'the least recently used went first')
  now = 5000
  t.equal(table.check('s1', 'spiffe://td/a'), 'unknown', 'expired after the idle time')
  table.bind('s3', 'spiffe://td/b')
  t.equal(table.check('s3', 'spiffe://td/b'), 'ok', 'an expired id may be bound anew')
  table.end('s3')
  t.equal(table.check('s3', 'spiffe://td/b'), 'unknown')
})

t.test('session table: a binding with a stream open does not expire until the stream ends', async (t) => {
  let now = 0
  const table = new SessionTable({ maxSessions: 10, idleTimeoutMs: 1000, now: () => now })
  table.bind('s1', 'spiffe://td/a')
  table.hold('s1')
  table.hold('s1')
  now = 5000
  t.equal(table.check('s1', 'spiffe://td/a'), 'ok', 'two streams open')
  table.bind('s1', 'spiffe://td/b')
  t.equal(table.check('s1', 'spiffe://td/b'), 'foreign', 'and still its owner')
  table.release('s1')
  now = 10_000
  t.equal(table.check('s1', 'spiffe://td/a'), 'ok', 'one stream still open')
  table.release('s1')
  table.release('s1')
  now = 10_900
  t.equal(table.check('s1', 'spiffe://td/a'), 'ok', 'the idle time counts from the last stream ending')
  now = 12_000
  t.equal(table.check('s1', 'spiffe://td/a'), 'unknown', 'then it expires (extra releases count for nothing)')
})

t.test('mirrored header values: plain, base64 sentinel, malformed', async (t) => {
  t.equal(decodeHeaderValue('tools/call'), 'tools/call')
  t.equal(decodeHeaderValue(`=?base64?${Buffer.from(' café ').toString('base64')}?=`), ' café ')
  t.equal(decodeHeaderValue(' leading'), undefined, 'unencoded leading space')
  t.equal(decodeHeaderValue('a\u0001b'), undefined, 'control character')
  t.equal(decodeHeaderValue('=?base64?!!?='), undefined)
  t.equal(
    decodeHeaderValue(`=?base64?${Buffer.from([0xff, 0xfe]).toString('base64')}?=`),
    undefined,
    'not UTF-8',
  )
  t.equal(decodeHeaderValue('=?BASE64?ZWNobw==?='), '=?BASE64?ZWNobw==?=', 'markers are case-sensitive')
})

t.test('a compressed list answer is not forwarded unread', async (t) => {
  const head = { status: 200, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } }
  const w = listFilterWrapper(head, pending, keep, 1 << 20) as ResponseWrapper
  t.match(w.headers?.remove, ['content-length', 'content-encoding'])
  t.equal(String(await w.data?.(Buffer.from([0x1f, 0x8b, 1, 2]))), '')
  t.match(JSON.parse(String(await w.end?.())), { id: 1, error: { code: -32603 } })
})

t.test('a list answer with nothing to take out keeps its bytes', async (t) => {
  const raw = '{ "jsonrpc": "2.0", "id": 1,  "result": { "tools": [ { "name": "echo" } ] } }'
  const w = listFilterWrapper(sse('application/json'), pending, keep, 1 << 20) as ResponseWrapper
  t.equal(await run(w, [Buffer.from(raw)]), raw)
})
