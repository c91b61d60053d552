// The list filter reads a list answer as text (list-scan.ts) and splices the kept items back (filter-text.ts)
// instead of parsing the answer whole. Whatever the text, it must keep exactly the items the parsed answer would
// keep, write an answer that parses to what the parsed filter writes, and give up (so the answer is parsed
// whole) on anything JSON.parse would read differently or refuse.
import t from 'tap'
import type { KeepItem } from '../src/lens/mcp/filter.ts'
import { filterList } from '../src/lens/mcp/filter.ts'
import { spliceList } from '../src/lens/mcp/filter-text.ts'
import { ListScanCache, MAX_DEPTH, scanList } from '../src/lens/mcp/list-scan.ts'
import { canonical } from '../src/lens/mcp/pins.ts'
import type { ListMethod } from '../src/lens/mcp/targets.ts'
import type { PolicyResource } from '../src/policy/engine.ts'

/** A small seeded PRNG (mulberry32): the same cases on every run, many of them. */
function prng(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const ALPHABET = ['a', 'b', '_', '/', ' ', 'é', '日', '😀', '"', '\\', '\n', '\u2028', '\ud800', '-', '*']

/** Text as JSON writes it, sometimes with characters escaped that need not be (\u0061, \/). */
function quote(s: string, rnd: () => number): string {
  let out = '"'
  for (const ch of s) {
    const r = rnd()
    if (ch === '"' || ch === '\\') out += `\\${ch}`
    else if (ch === '\n') out += '\\n'
    else if (ch === '\ud800') out += '\\ud800'
    else if (ch === '/' && r < 0.5) out += '\\/'
    else if (r < 0.1 && ch.length === 1) out += `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`
    else out += ch
  }
  return `${out}"`
}

function word(rnd: () => number, max = 8): string {
  let s = ''
  const n = Math.floor(rnd() * max)
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rnd() * ALPHABET.length)]
  return s
}

function ws(rnd: () => number): string {
  const r = rnd()
  return r < 0.7 ? '' : r < 0.8 ? ' ' : r < 0.9 ? '\n  ' : '\t\r\n'
}

/** Any JSON value as text, nested up to `depth`. */
function value(rnd: () => number, depth: number): string {
  const r = rnd()
  if (depth <= 0 || r < 0.3) return quote(word(rnd), rnd)
  if (r < 0.4)
    return ['0', '-1', '3.25', '1e3', '-0.5E-2', '12345678901234567890'][Math.floor(rnd() * 6)] as string
  if (r < 0.5) return ['true', 'false', 'null'][Math.floor(rnd() * 3)] as string
  if (r < 0.75) {
    const n = Math.floor(rnd() * 4)
    const members = Array.from(
      { length: n },
      () => `${ws(rnd)}${quote(word(rnd, 5), rnd)}${ws(rnd)}:${ws(rnd)}${value(rnd, depth - 1)}`,
    )
    return `{${members.join(',')}${ws(rnd)}}`
  }
  const n = Math.floor(rnd() * 4)
  return `[${Array.from({ length: n }, () => ws(rnd) + value(rnd, depth - 1)).join(',')}${ws(rnd)}]`
}

/** A key written as JSON may write it: plainly, or with a character escaped. */
function key(name: string, rnd: () => number): string {
  if (rnd() < 0.15) return `"${name.slice(0, 1)}\\u00${name.charCodeAt(1).toString(16)}${name.slice(2)}"`
  return `"${name}"`
}

function item(rnd: () => number, field: string): string {
  const r = rnd()
  if (r < 0.05) return value(rnd, 1)
  const members: string[] = []
  if (r > 0.1) {
    // Mostly a name among a few names so some repeat; now and then something that is not a string.
    const name =
      rnd() < 0.05 ? value(rnd, 1) : quote(rnd() < 0.6 ? `tool_${Math.floor(rnd() * 6)}` : word(rnd), rnd)
    members.push(`${key(field, rnd)}${ws(rnd)}:${ws(rnd)}${name}`)
  }
  for (let i = Math.floor(rnd() * 3); i > 0; i--) {
    const k = rnd() < 0.3 ? 'description' : rnd() < 0.5 ? 'inputSchema' : word(rnd, 4)
    if (k === field) continue
    members.splice(Math.floor(rnd() * (members.length + 1)), 0, `${quote(k, rnd)}:${value(rnd, 3)}`)
  }
  return `{${ws(rnd)}${members.join(`,${ws(rnd)}`)}${ws(rnd)}}`
}

function answer(rnd: () => number, listKey: string, field: string, id: string): string {
  const items = Array.from({ length: Math.floor(rnd() * 8) }, () => item(rnd, field))
  const result: string[] = [`${key(listKey, rnd)}:${ws(rnd)}[${items.join(`,${ws(rnd)}`)}${ws(rnd)}]`]
  if (rnd() < 0.2) result.push(`"nextCursor":${quote(word(rnd), rnd)}`)
  if (rnd() < 0.15) result.push(`${key('cacheScope', rnd)}:${rnd() < 0.8 ? '"public"' : value(rnd, 1)}`)
  if (rnd() < 0.15) result.push(`"ttlMs":${Math.floor(rnd() * 1000)}`)
  if (rnd() < 0.1) result.push(`"_meta":${value(rnd, 2)}`)
  for (let i = result.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    ;[result[i], result[j]] = [result[j] as string, result[i] as string]
  }
  const members = [
    `"jsonrpc":"2.0"`,
    `${key('id', rnd)}:${id}`,
    `${key('result', rnd)}:${ws(rnd)}{${result.join(`,${ws(rnd)}`)}}`,
  ]
  if (rnd() < 0.5) members.reverse()
  return `${ws(rnd)}{${members.join(`,${ws(rnd)}`)}}${ws(rnd)}`
}

const SPECS: ReadonlyArray<[ListMethod, string, string]> = [
  ['tools/list', 'tools', 'name'],
  ['prompts/list', 'prompts', 'name'],
  ['resources/list', 'resources', 'uri'],
  ['resources/templates/list', 'resourceTemplates', 'uriTemplate'],
]

/** Keeps names with an even sum of code units, and (to vary) every name starting `tool_1`. */
const keep: KeepItem = (resource: PolicyResource) => {
  const name = resource.kind === 'mcp.resource' ? resource.uri : 'name' in resource ? resource.name : ''
  let sum = 0
  for (let i = 0; i < name.length; i++) sum += name.charCodeAt(i)
  return sum % 2 === 0 || name.startsWith('tool_1')
}

/** What the parsed filter writes for the answer text: the answer itself when it keeps everything. */
function parsedFilter(method: ListMethod, text: string): unknown {
  const doc = JSON.parse(text) as Record<string, unknown>
  const filtered = filterList(method, doc.result, keep)
  if (filtered instanceof Promise) throw new Error('sync keep')
  return filtered === undefined ? doc : { ...doc, result: filtered }
}

t.test('the text filter keeps what the parsed filter keeps, on 20,000 generated answers', async (t) => {
  const rnd = prng(0x5eed)
  let scanned = 0
  let changed = 0
  for (let n = 0; n < 20_000; n++) {
    const [method, listKey, field] = SPECS[n % SPECS.length] as [ListMethod, string, string]
    const id = rnd() < 0.5 ? String(Math.floor(rnd() * 1e6)) : quote(word(rnd), rnd)
    const text = answer(rnd, listKey, field, id)
    const bytes = Buffer.from(text)
    const scan = scanList(bytes, listKey, field)
    if (scan === undefined) {
      // Giving up is always safe (the answer is then parsed whole); it must happen only where reading is unsure.
      t.fail(`gave up on a well-formed answer: ${JSON.stringify(text)}`)
      continue
    }
    scanned++
    if (scan.id !== (JSON.parse(text) as { id: unknown }).id) {
      t.fail(`the id as JSON.parse reads it: ${JSON.stringify(text)}`)
      break
    }
    const out = spliceList(bytes, scan, method, keep)
    if (out instanceof Promise) throw new Error('sync keep')
    if (out !== bytes) changed++
    const expected = parsedFilter(method, text)
    const got = JSON.parse(out.toString('utf8')) as unknown
    if (canonical(got) !== canonical(expected)) {
      // Messages hold the texts JSON-escaped: a lone surrogate would break the TAP stream.
      t.equal(canonical(got), canonical(expected), `answer ${n}: ${JSON.stringify(text)}`)
      break
    }
  }
  t.equal(scanned, 20_000)
  t.ok(changed > 5000 && changed < 20_000, `${changed} answers filtered, the others kept whole`)
})

t.test(
  'text the reader accepts after random damage is text JSON.parse accepts and reads alike',
  async (t) => {
    const rnd = prng(0xbad)
    const NOISE = ['"', '\\', '{', '}', '[', ']', ',', ':', ' ', '\n', '\u0001', 'e', '-', '0', '.', 'u', 'n']
    let accepted = 0
    for (let n = 0; n < 20_000; n++) {
      const [method, listKey, field] = SPECS[n % SPECS.length] as [ListMethod, string, string]
      let text = answer(rnd, listKey, field, String(n))
      for (let k = rnd() < 0.8 ? 1 : 2; k > 0; k--) {
        const at = Math.floor(rnd() * text.length)
        const noise = NOISE[Math.floor(rnd() * NOISE.length)] as string
        const r = rnd()
        text =
          r < 0.33
            ? text.slice(0, at) + noise + text.slice(at)
            : r < 0.66
              ? text.slice(0, at) + text.slice(at + 1)
              : text.slice(0, at) + noise + text.slice(at + 1)
      }
      const bytes = Buffer.from(text)
      const scan = scanList(bytes, listKey, field)
      if (scan === undefined) continue
      accepted++
      let expected: unknown
      try {
        // The bytes as the client decodes them (damage can leave half a surrogate pair, which UTF-8 cannot carry).
        expected = parsedFilter(method, bytes.toString('utf8'))
      } catch {
        t.fail(`read text JSON.parse refuses: ${JSON.stringify(text)}`)
        break
      }
      const out = spliceList(bytes, scan, method, keep) as Buffer
      if (canonical(JSON.parse(out.toString('utf8'))) !== canonical(expected)) {
        t.fail(`read differently: ${JSON.stringify(text)}`)
        break
      }
    }
    t.ok(accepted > 500, `${accepted} damaged answers still well-formed and read alike; the rest given up`)
  },
)

t.test('gives up on text JSON.parse refuses or could read otherwise', async (t) => {
  const ok = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}'
  t.ok(scanList(Buffer.from(ok), 'tools', 'name'), 'the well-formed answer is read')
  const cases: Record<string, string> = {
    'a name twice in an item': '{"id":1,"result":{"tools":[{"name":"a","name":"b"}]}}',
    'a name twice, once escaped': '{"id":1,"result":{"tools":[{"name":"a","n\\u0061me":"b"}]}}',
    'the list twice': '{"id":1,"result":{"tools":[{"name":"a"}],"tools":[{"name":"b"}]}}',
    'the result twice': '{"id":1,"result":{"tools":[]},"result":{"tools":[{"name":"b"}]}}',
    'the id twice': '{"id":1,"id":2,"result":{"tools":[]}}',
    'cacheScope twice': '{"id":1,"result":{"tools":[],"cacheScope":"a","cacheScope":"b"}}',
    'a batch': '[{"id":1,"result":{"tools":[]}}]',
    'no id': '{"result":{"tools":[]}}',
    'a null id': '{"id":null,"result":{"tools":[]}}',
    'a result that is not an object': '{"id":1,"result":[]}',
    'a list that is not an array': '{"id":1,"result":{"tools":{}}}',
    'no list': '{"id":1,"result":{"prompts":[]}}',
    'trailing text': '{"id":1,"result":{"tools":[]}} x',
    'two messages': '{"id":1,"result":{"tools":[]}}{"id":2,"result":{"tools":[]}}',
    'a raw control character in a string': '{"id":1,"result":{"tools":[{"name":"a\tb"}]}}',
    'a raw newline in a key': '{"id":1,"result":{"tools":[{"na\nme":"a"}]}}',
    'an unknown escape': '{"id":1,"result":{"tools":[{"name":"\\x41"}]}}',
    'a short unicode escape': '{"id":1,"result":{"tools":[{"name":"\\u41"}]}}',
    'a leading zero': '{"id":01,"result":{"tools":[]}}',
    'a bare fraction point': '{"id":1,"result":{"tools":[{"name":"a","n":1.}]}}',
    'a bare exponent': '{"id":1,"result":{"tools":[{"name":"a","n":1e}]}}',
    'a plus sign': '{"id":1,"result":{"tools":[{"name":"a","n":+1}]}}',
    'a truncated literal': '{"id":1,"result":{"tools":[{"name":"a","n":tru}]}}',
    'a trailing comma in an array': '{"id":1,"result":{"tools":[{"name":"a"},]}}',
    'a trailing comma in an object': '{"id":1,"result":{"tools":[{"name":"a",}]}}',
    'a missing colon': '{"id":1,"result":{"tools":[{"name" "a"}]}}',
    'single quotes': "{'id':1,'result':{'tools':[]}}",
    'an unterminated string': '{"id":1,"result":{"tools":[{"name":"a}]}}',
    'a truncated answer': '{"id":1,"result":{"tools":[{"name":"a"}',
    NaN: '{"id":1,"result":{"tools":[{"name":"a","n":NaN}]}}',
    'a comment': '{"id":1,"result":{"tools":[/* x */]}}',
    'nesting deeper than the limit': `{"id":1,"result":{"tools":[{"name":"a","x":${'['.repeat(MAX_DEPTH)}${']'.repeat(MAX_DEPTH)}}]}}`,
  }
  for (const [name, text] of Object.entries(cases)) {
    t.equal(scanList(Buffer.from(text), 'tools', 'name'), undefined, name)
  }
  // Where the reader gives up on grammar, JSON.parse refuses too: nothing it accepts is skipped unread.
  for (const name of ['a raw control character in a string', 'an unknown escape', 'a leading zero', 'NaN']) {
    t.throws(() => JSON.parse(cases[name] as string), name)
  }
})

t.test('duplicate members the filter does not read pass as they are', async (t) => {
  const text = '{"id":1,"result":{"tools":[{"name":"tool_1","x":1,"x":2},{"name":"b"}],"extra":1,"extra":2}}'
  const scan = scanList(Buffer.from(text), 'tools', 'name')
  t.ok(scan)
  t.same(scan?.keys, ['tool_1', 'b'])
})

t.test('an answer seen before is known again by its text, whatever its new id', async (t) => {
  const cache = new ListScanCache(1 << 20, 0)
  const tools = Array.from({ length: 50 }, (_, i) => ({ name: `tool_${i}`, description: 'd'.repeat(i) }))
  const at = (id: unknown, idFirst: boolean) =>
    Buffer.from(
      JSON.stringify(
        idFirst ? { jsonrpc: '2.0', id, result: { tools } } : { result: { tools }, jsonrpc: '2.0', id },
      ),
    )
  for (const idFirst of [true, false]) {
    const first = cache.scan(at(7, idFirst), 'tools', 'name')
    t.ok(first)
    for (const id of [8, 123456, -1, 'a-string', 'é"\\', 0.5, 7]) {
      const text = at(id, idFirst)
      const again = cache.scan(text, 'tools', 'name')
      t.same(again, scanList(text, 'tools', 'name'), `id ${JSON.stringify(id)}, id first: ${idFirst}`)
      t.equal(again?.id, id)
      const out = spliceList(text, again as NonNullable<typeof again>, 'tools/list', keep)
      t.equal(canonical(JSON.parse(out.toString())), canonical(parsedFilter('tools/list', text.toString())))
    }
  }
  // Anything else different is scanned afresh, and read right.
  const other = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, result: { tools: tools.slice(1) } }))
  t.same(cache.scan(other, 'tools', 'name'), scanList(other, 'tools', 'name'))
  const spaced = Buffer.from(`${at(9, true).toString()} `)
  t.same(cache.scan(spaced, 'tools', 'name'), scanList(spaced, 'tools', 'name'))
  // The id's place holding something that is not an id: not the same answer, and not one at all.
  const nullId = at(null, true)
  t.equal(cache.scan(nullId, 'tools', 'name'), undefined)
  // The cache keeps a copy: a socket buffer reused after the scan does not change what is remembered.
  const reused = at(10, true)
  cache.scan(reused, 'tools', 'name')
  reused.fill(0x20)
  const text = at(11, true)
  t.same(cache.scan(text, 'tools', 'name'), scanList(text, 'tools', 'name'))
})

t.test('a scoped result is marked private, its own cacheScope replaced or one added', async (t) => {
  const cases = [
    '{"id":1,"result":{"cacheScope":"public","tools":[{"name":"a"},{"name":"tool_1"}]}}',
    '{"id":1,"result":{"tools":[{"name":"tool_1"}],"ttlMs":5}}',
    '{"id":1,"result":{"tools":[{"name":"tool_1"}],"cacheScope":{"odd":[1]}}}',
  ]
  for (const text of cases) {
    const bytes = Buffer.from(text)
    const scan = scanList(bytes, 'tools', 'name')
    const out = spliceList(bytes, scan as NonNullable<typeof scan>, 'tools/list', keep) as Buffer
    const got = JSON.parse(out.toString()) as { result: { cacheScope: string } }
    t.equal(got.result.cacheScope, 'private', text)
    t.equal(canonical(got), canonical(parsedFilter('tools/list', text)))
  }
})
