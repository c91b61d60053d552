// The strict JSON reader and field extraction of the LLM lens, case by case: what real request bodies look like
// passes untouched; every way to make the sidecar and the provider read different things is refused.
import t from 'tap'
import { filterAnthropicModels } from '../src/lens/llm/anthropic.ts'
import { JsonRejected, readJsonObject } from '../src/lens/llm/json.ts'
import { filterOpenAiModels } from '../src/lens/llm/openai.ts'
import { LlmRequestRejected, readLlmRequest } from '../src/lens/llm/request.ts'

const problem = (body: string, depth?: number) => {
  try {
    readJsonObject(Buffer.from(body), depth)
    return 'ok'
  } catch (err) {
    return err instanceof JsonRejected ? err.problem : `threw ${String(err)}`
  }
}

t.test('valid bodies, including the tricky but legal ones', async (t) => {
  for (const body of [
    '{}',
    ' \n{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}\n',
    // Keys inside strings are not keys, whatever they look like.
    '{"a":"\\"model\\":\\"b\\",","model":"x"}',
    '{"a":"\\\\","model":"x"}',
    // The same key in different objects is no duplicate.
    '{"m":[{"role":"user"},{"role":"assistant"}],"role":"x"}',
    // A constructor key without a prototype under it is ordinary data.
    '{"constructor":"x","tools":[{"constructor":{"type":"string"}}]}',
    '{"unicode":"é ☃ \\ud83d\\ude00","n":-1.5e+3,"t":true,"f":false,"z":null}',
  ])
    t.equal(problem(body), 'ok', body)
  t.same(readJsonObject(Buffer.from('{"a":{"b":[1,2]}}')), { a: { b: [1, 2] } })
})

t.test('refusals and their problem codes', async (t) => {
  const cases: [string, string, number?][] = [
    ['', 'NOT_JSON'],
    ['{"model":', 'NOT_JSON'],
    ['{"model":"x"', 'NOT_JSON'],
    ['{"a":"unterminated}', 'NOT_JSON'],
    ["{'a':1}", 'NOT_JSON'],
    ['\ufeff{"a":1}', 'NOT_JSON'],
    ['[1,2]', 'NOT_AN_OBJECT'],
    ['"x"', 'NOT_AN_OBJECT'],
    ['null', 'NOT_AN_OBJECT'],
    ['{"a":1,"a":1}', 'DUPLICATE_KEY'],
    ['{"model":"a","m\\u006fdel":"b"}', 'DUPLICATE_KEY'],
    ['{"x":{"y":{"z":1,"z":2}}}', 'DUPLICATE_KEY'],
    ['{"__proto__":{}}', 'FORBIDDEN_KEY'],
    ['{"a":[{"__pro\\u0074o__":1}]}', 'FORBIDDEN_KEY'],
    ['{"constructor":{"prototype":{"isAdmin":true}}}', 'FORBIDDEN_KEY'],
    ['{"a":[[[[1]]]]}', 'TOO_DEEP', 4],
    [`${'['.repeat(100_000)}${']'.repeat(100_000)}`, 'TOO_DEEP'],
  ]
  for (const [body, code, depth] of cases) t.equal(problem(body, depth), code, body.slice(0, 40))
  t.equal(problem('{"a":[[[1]]]}', 4), 'ok', 'exactly at the depth cap')
})

t.test('fields: model, stream, token limit per API', async (t) => {
  const read = (api: Parameters<typeof readLlmRequest>[0], body: string) => {
    try {
      return readLlmRequest(api, Buffer.from(body))
    } catch (err) {
      if (err instanceof LlmRequestRejected) return err.problem
      throw err
    }
  }
  t.same(read('openai.chat', '{"model":"m","stream":true,"max_tokens":5,"max_completion_tokens":9}'), {
    model: 'm',
    stream: true,
    maxTokens: 9,
  })
  t.same(read('openai.chat', '{"model":"m","stream":null,"max_tokens":null}'), { model: 'm', stream: false })
  t.same(read('openai.responses', '{"model":"m","max_output_tokens":7,"max_tokens":99}'), {
    model: 'm',
    stream: false,
    maxTokens: 7,
  })
  t.same(read('anthropic.messages', '{"model":"c","max_tokens":3,"stream":true}'), {
    model: 'c',
    stream: true,
    maxTokens: 3,
  })
  t.same(read('anthropic.count_tokens', '{"model":"c","stream":true}'), { model: 'c', stream: false })
  t.same(read('openai.embeddings', '{"model":"e","input":"x"}'), { model: 'e', stream: false })
  t.equal(read('openai.chat', '{"messages":[]}'), 'MODEL_MISSING')
  t.equal(read('openai.chat', '{"model":null}'), 'MODEL_MISSING')
  t.equal(read('openai.chat', '{"model":["a"]}'), 'MODEL_INVALID')
  t.equal(read('openai.chat', '{"model":""}'), 'MODEL_INVALID')
  t.equal(read('openai.chat', '{"model":"a\\nb"}'), 'MODEL_INVALID')
  t.equal(read('openai.chat', `{"model":"${'a'.repeat(300)}"}`), 'MODEL_INVALID')
  t.equal(read('openai.chat', '{"model":"m","stream":1}'), 'FIELD_INVALID')
  t.equal(read('openai.chat', '{"model":"m","max_tokens":-1}'), 'FIELD_INVALID')
  t.equal(read('openai.chat', '{"model":"m","max_tokens":"5"}'), 'FIELD_INVALID')
  t.equal(read('openai.chat', '{"model":"m","model":"n"}'), 'DUPLICATE_KEY')
})

t.test('model lists: both shapes filtered, paging fields describing the filtered page', async (t) => {
  const allowed = (id: string) => id.startsWith('ok-')
  t.same(
    filterOpenAiModels(
      { object: 'list', data: [{ id: 'ok-1' }, { id: 'no-1' }, { id: 'ok-2' }, { nope: 1 }, null] },
      allowed,
    ),
    { object: 'list', data: [{ id: 'ok-1' }, { id: 'ok-2' }] },
  )
  t.same(
    filterAnthropicModels(
      {
        data: [{ id: 'no-0' }, { id: 'ok-1' }, { id: 'ok-2' }, { id: 'no-3' }],
        has_more: true,
        first_id: 'no-0',
        last_id: 'no-3',
      },
      allowed,
    ),
    { data: [{ id: 'ok-1' }, { id: 'ok-2' }], has_more: true, first_id: 'ok-1', last_id: 'ok-2' },
  )
  t.same(
    filterAnthropicModels(
      { data: [{ id: 'no-0' }], has_more: true, first_id: 'no-0', last_id: 'no-0' },
      allowed,
    ),
    { data: [], has_more: true, first_id: null, last_id: null },
    'an emptied page names no denied model and keeps the provider has_more',
  )
  t.same(
    filterAnthropicModels(
      { data: [{ id: 'no-0' }], has_more: false, first_id: 'no-0', last_id: 'no-0' },
      allowed,
    ),
    { data: [], has_more: false, first_id: null, last_id: null },
    'the last page stays the last page',
  )
  t.equal(filterOpenAiModels({ object: 'list', data: 'x' }, allowed), undefined, 'not the list shape')
  t.equal(filterAnthropicModels({}, allowed), undefined)
})

t.test('bytes that are not UTF-8 are refused (RFC 8259 §8.1), valid multi-byte text is not', async (t) => {
  const bytes = (...parts: (string | number[])[]) =>
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))))
  const rejected = (body: Buffer) => {
    try {
      readJsonObject(body)
      return 'ok'
    } catch (err) {
      return err instanceof JsonRejected ? err.problem : `threw ${String(err)}`
    }
  }
  // A model name with a stray byte: decoded here as "gpt-4o-mini\ufffd", a provider may read it otherwise.
  t.equal(rejected(bytes('{"model":"gpt-4o-mini', [0xff], '"}')), 'NOT_JSON', 'a stray 0xff')
  t.equal(rejected(bytes('{"model":"a', [0xc0, 0xaf], '"}')), 'NOT_JSON', 'an overlong encoding')
  t.equal(rejected(bytes('{"model":"a', [0xed, 0xa0, 0x80], '"}')), 'NOT_JSON', 'an encoded surrogate')
  t.equal(rejected(bytes('{"model":"a', [0xe2, 0x98], '"}')), 'NOT_JSON', 'a truncated sequence')
  t.equal(rejected(bytes('{"model":"é☃😀"}')), 'ok', 'valid UTF-8 of every length')
})
