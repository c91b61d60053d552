import t from 'tap'
import { parseStrictJson, type StrictJsonOptions } from '../src/internal/strict-json.ts'

const opts: StrictJsonOptions = { errorCode: 'SPIFFE_BUNDLE_INVALID', what: 'test document' }

t.test('parses what JSON.parse parses, to the same values', async (t) => {
  const docs = [
    '{}',
    '[]',
    ' {"a": [1, -2, 3.5, 1e3, -0.25E-2, 0], "b": {"c": null, "d": true, "e": false}} ',
    '"plain"',
    '"esc \\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00"',
    '"raw \u00e9 \ud83d\ude00"',
    '\t\r\n[ "x" ,\n"y" ]',
    '12345',
    '{"constructor": {"prototype": 1}, "toString": 2}',
  ]
  for (const doc of docs) {
    t.same(parseStrictJson(doc, opts), JSON.parse(doc), doc)
    t.same(parseStrictJson(new TextEncoder().encode(doc), opts), JSON.parse(doc), `bytes: ${doc}`)
  }
})

t.test('rejects malformed JSON', async (t) => {
  const cases = [
    '',
    ' ',
    '{',
    '{"a"}',
    '{"a":1,}',
    '[1,]',
    '[1 2]',
    '{a:1}',
    "{'a':1}",
    '01',
    '-',
    '1.',
    '.5',
    '1e',
    '+1',
    'NaN',
    'Infinity',
    '1e999',
    'tru',
    'nul',
    '"unterminated',
    '"bad \\x escape"',
    '"bad \\u12G4"',
    '"tab\tinside"',
    '"lone \\ud800"',
    '"lone \\udc00"',
    '"high then bad \\ud800\\u0041"',
    '{} {}',
    '{}x',
    '\ufeff{}',
    '\u00a0{}',
    '// c\n{}',
  ]
  for (const doc of cases) {
    t.throws(() => parseStrictJson(doc, opts), { code: 'SPIFFE_BUNDLE_INVALID', reason: 'MALFORMED' }, doc)
  }
})

t.test('rejects invalid UTF-8 and unpaired surrogates instead of substituting', async (t) => {
  const bytes = [
    Uint8Array.from([0x22, 0xff, 0x22]),
    Uint8Array.from([0x22, 0xc3, 0x22]),
    Uint8Array.from([0x22, 0xed, 0xa0, 0x80, 0x22]),
    Uint8Array.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]),
  ]
  for (const b of bytes) {
    t.throws(() => parseStrictJson(b, opts), { code: 'SPIFFE_BUNDLE_INVALID', reason: 'MALFORMED' })
  }
  t.throws(() => parseStrictJson('"\ud800"', opts), { code: 'SPIFFE_BUNDLE_INVALID', reason: 'MALFORMED' })
})

t.test('rejects duplicate member names at any depth, after unescaping', async (t) => {
  const cases = [
    '{"a":1,"a":2}',
    '{"a":1,"b":2,"a":1}',
    '{"x":{"k":1,"k":1}}',
    '[{"ok":1},{"k":1,"k":2}]',
    '{"a":1,"\\u0061":2}',
    '{"trust_domains":{"td":{"keys":[]},"td":{"keys":[]}}}',
  ]
  for (const doc of cases) {
    t.throws(
      () => parseStrictJson(doc, opts),
      { code: 'SPIFFE_BUNDLE_INVALID', reason: 'DUPLICATE_KEY' },
      doc,
    )
  }
  t.same(parseStrictJson('{"a":{"k":1},"b":{"k":2}}', opts), { a: { k: 1 }, b: { k: 2 } })
})

t.test('refuses __proto__ members so parsed objects cannot pollute a prototype', async (t) => {
  for (const doc of ['{"__proto__":{"polluted":true}}', '{"a":{"__proto__":1}}', '{"\\u005f_proto__":1}']) {
    t.throws(
      () => parseStrictJson(doc, opts),
      { code: 'SPIFFE_BUNDLE_INVALID', reason: 'FORBIDDEN_KEY' },
      doc,
    )
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})

t.test('returns exact bigints only for the members asked for', async (t) => {
  const doc =
    '{"spiffe_sequence": 18446744073709551615, "other": 18446744073709551615, "n": [9007199254740993]}'
  const v = parseStrictJson(doc, { ...opts, bigIntMembers: new Set(['spiffe_sequence']) }) as Record<
    string,
    unknown
  >
  t.equal(v.spiffe_sequence, 18446744073709551615n)
  t.equal(typeof v.other, 'number')
  t.same(v.n, [9007199254740992])
  const small = parseStrictJson('{"spiffe_sequence": -3}', {
    ...opts,
    bigIntMembers: new Set(['spiffe_sequence']),
  }) as Record<string, unknown>
  t.equal(small.spiffe_sequence, -3n)
  const frac = parseStrictJson('{"spiffe_sequence": 1.5}', {
    ...opts,
    bigIntMembers: new Set(['spiffe_sequence']),
  }) as Record<string, unknown>
  t.equal(frac.spiffe_sequence, 1.5, 'a non-integer stays a number for the caller to reject')
  const long = `{"spiffe_sequence": ${'9'.repeat(65)}}`
  t.throws(() => parseStrictJson(long, { ...opts, bigIntMembers: new Set(['spiffe_sequence']) }), {
    code: 'SPIFFE_BUNDLE_INVALID',
    reason: 'TOO_LARGE',
  })
})

t.test('enforces the size limit in bytes and the depth limit', async (t) => {
  t.throws(() => parseStrictJson(`"${'a'.repeat(100)}"`, { ...opts, maxBytes: 64 }), {
    code: 'SPIFFE_BUNDLE_INVALID',
    reason: 'TOO_LARGE',
  })
  // 30 chars but 90 UTF-8 bytes.
  t.throws(() => parseStrictJson(`"${'\u20ac'.repeat(28)}"`, { ...opts, maxBytes: 64 }), {
    code: 'SPIFFE_BUNDLE_INVALID',
    reason: 'TOO_LARGE',
  })
  t.throws(() => parseStrictJson(new Uint8Array(65).fill(0x20), { ...opts, maxBytes: 64 }), {
    code: 'SPIFFE_BUNDLE_INVALID',
    reason: 'TOO_LARGE',
  })
  t.same(parseStrictJson('[[[1]]]', { ...opts, maxDepth: 3 }), [[[1]]])
  t.throws(() => parseStrictJson('[[[[1]]]]', { ...opts, maxDepth: 3 }), {
    code: 'SPIFFE_BUNDLE_INVALID',
    reason: 'TOO_DEEP',
  })
  t.throws(() => parseStrictJson('{"a":{"b":{"c":{}}}}', { ...opts, maxDepth: 3 }), {
    code: 'SPIFFE_BUNDLE_INVALID',
    reason: 'TOO_DEEP',
  })
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`
  t.throws(() => parseStrictJson(deep, opts), { code: 'SPIFFE_BUNDLE_INVALID', reason: 'TOO_DEEP' })
})

t.test('reports failures under the caller-chosen code', async (t) => {
  t.throws(() => parseStrictJson('{"a":1,"a":1}', { errorCode: 'SPIFFE_JWT_INVALID', what: 'JWT claims' }), {
    code: 'SPIFFE_JWT_INVALID',
    reason: 'DUPLICATE_KEY',
  })
})
