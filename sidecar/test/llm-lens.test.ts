// The LLM lens end to end with the official SDKs, unchanged but for the base URL (the agent sidecar's outbound
// listener) and a dummy key: model permissions by SPIFFE ID, filtered model lists in both shapes, the provider
// key injected and the agent's stripped, errors the SDKs surface with their code, and bad bodies refused before
// anything reaches the provider.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import t, { type Test } from 'tap'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { on, type PolicyDecisionEvent } from '../src/observe/events.ts'
import { AGENT, LLM_POLICY, type LlmSidecar, startLlmSidecar } from './helpers/llm-sidecar.ts'

const AGENT_KEY = `sk-agent-${randomBytes(12).toString('hex')}`
const POLICY = LLM_POLICY
type Setup = LlmSidecar
const setup = startLlmSidecar

function clients(s: Setup) {
  return {
    openai: new OpenAI({ baseURL: `${s.outbound}/v1`, apiKey: AGENT_KEY, maxRetries: 0 }),
    anthropic: new Anthropic({ baseURL: s.outbound, apiKey: AGENT_KEY, maxRetries: 0 }),
  }
}

function decisions(t: Test): PolicyDecisionEvent[] {
  const seen: PolicyDecisionEvent[] = []
  t.teardown(on('policyDecision', (e) => seen.push(e)))
  return seen
}

function post(
  url: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

t.test('allowed models work through both SDKs, streaming and not, with the sidecar key only', async (t) => {
  const s = await setup(t)
  const { openai, anthropic } = clients(s)

  const chat = await openai.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hi' }],
  })
  t.equal(chat.choices[0]?.message.content, 'tok tok tok tok tok')

  let streamed = ''
  const stream = await openai.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hi' }],
    stream: true,
  })
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? ''
  t.equal(streamed, 'tok tok tok tok tok')

  const response = await openai.responses.create({ model: 'gpt-4o-mini', input: 'hi', max_output_tokens: 3 })
  t.equal(response.output_text, 'tok tok tok')
  let deltas = 0
  const rstream = await openai.responses.create({ model: 'gpt-4o-mini', input: 'hi', stream: true })
  for await (const ev of rstream) if (ev.type === 'response.output_text.delta') deltas++
  t.equal(deltas, 5)

  const completion = await openai.completions.create({ model: 'gpt-4o-mini', prompt: 'hi', max_tokens: 2 })
  t.equal(completion.choices[0]?.text, 'tok tok')

  const embedding = await openai.embeddings.create({ model: 'gpt-4o-mini', input: 'hi' })
  t.same(embedding.data[0]?.embedding, [0.1, 0.2, 0.3])

  const message = await anthropic.messages.create({
    model: 'claude-test-small',
    max_tokens: 4,
    messages: [{ role: 'user', content: 'hi' }],
  })
  t.same(message.content, [{ type: 'text', text: 'tok tok tok tok' }])
  const mstream = anthropic.messages.stream({
    model: 'claude-test-small',
    max_tokens: 100,
    messages: [{ role: 'user', content: 'hi' }],
  })
  const final = await mstream.finalMessage()
  t.same(final.content, [{ type: 'text', text: 'tok tok tok tok tok' }])
  const counted = await anthropic.messages.countTokens({
    model: 'claude-test-small',
    messages: [{ role: 'user', content: 'hi' }],
  })
  t.equal(counted.input_tokens, 11)

  const received = s.upstream.received.filter((r) => r.method === 'POST')
  t.equal(received.length, 9, 'every call reached the provider')
  for (const r of received) {
    const anthropicCall = r.path.startsWith('/v1/messages')
    t.notOk(
      JSON.stringify(r.headers).includes(AGENT_KEY),
      `${r.path}: the agent's key never reaches the provider`,
    )
    if (anthropicCall) {
      t.equal(r.headers['x-api-key'], s.keys.anthropic, `${r.path}: the sidecar's Anthropic key`)
      t.equal(r.headers.authorization, undefined, `${r.path}: no Authorization`)
      t.match(r.headers['anthropic-version'], /^\d{4}-\d{2}-\d{2}$/, "the SDK's own API version")
    } else {
      t.equal(r.headers.authorization, `Bearer ${s.keys.openai}`, `${r.path}: the sidecar's OpenAI key`)
      t.equal(r.headers['x-api-key'], undefined, `${r.path}: no x-api-key`)
    }
  }
  const bare = await post(
    `${s.outbound}/v1/messages`,
    '{"model":"claude-test-small","max_tokens":1,"messages":[]}',
  )
  t.equal(bare.status, 200)
  t.equal(
    s.upstream.received.at(-1)?.headers['anthropic-version'],
    '2023-06-01',
    'the default version when none is sent',
  )
  // The bytes the client sent are the bytes the provider got.
  const raw = await post(
    `${s.outbound}/v1/chat/completions`,
    '{"model":"gpt-4o-mini",  "messages":[],"x":1.50}',
  )
  t.equal(raw.status, 200)
  t.equal(s.upstream.received.at(-1)?.raw.toString(), '{"model":"gpt-4o-mini",  "messages":[],"x":1.50}')
})

t.test('a denied model is refused with SVD_POLICY_DENIED in each SDK and reaches nothing', async (t) => {
  const s = await setup(t)
  const { openai, anthropic } = clients(s)
  const events = decisions(t)

  const chatError = await openai.chat.completions
    .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
    .catch((e: unknown) => e)
  t.type(chatError, OpenAI.PermissionDeniedError)
  t.equal((chatError as InstanceType<typeof OpenAI.APIError>).code, 'SVD_POLICY_DENIED')
  t.match((chatError as Error).message, /403 the policy does not allow llm\.model gpt-4o/)

  const streamError = await openai.chat.completions
    .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true })
    .catch((e: unknown) => e)
  t.equal((streamError as InstanceType<typeof OpenAI.APIError>).code, 'SVD_POLICY_DENIED')

  const messageError = await anthropic.messages
    .create({ model: 'claude-test-large', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] })
    .catch((e: unknown) => e)
  t.type(messageError, Anthropic.PermissionDeniedError)
  t.equal((messageError as InstanceType<typeof Anthropic.APIError>).errorCode, 'SVD_POLICY_DENIED')
  t.match((messageError as Error).message, /SVD_POLICY_DENIED/)
  t.equal((messageError as InstanceType<typeof Anthropic.APIError>).type, 'permission_error')

  t.equal(s.upstream.received.length, 0, 'nothing denied reached the provider')
  t.match(
    events.filter((e) => e.decision === 'deny').map((e) => [e.action, e.resource, e.subject]),
    [
      ['llm.model', 'gpt-4o', AGENT],
      ['llm.model', 'gpt-4o', AGENT],
      ['llm.model', 'claude-test-large', AGENT],
    ],
  )
})

t.test('the model list is filtered per subject, in both shapes', async (t) => {
  const s = await setup(t)
  const { openai, anthropic } = clients(s)
  const seen = decisions(t)

  const ids: string[] = []
  for await (const m of openai.models.list()) ids.push(m.id)
  t.same(ids, ['gpt-4o-mini', 'claude-test-small'])

  const page = await anthropic.models.list()
  t.same(
    page.data.map((m) => m.id),
    ['gpt-4o-mini', 'claude-test-small'],
  )
  t.equal(page.has_more, false)
  t.equal(page.first_id, 'gpt-4o-mini')
  t.equal(page.last_id, 'claude-test-small')

  const res = await fetch(`${s.outbound}/v1/models`, { headers: { 'accept-encoding': 'gzip' } })
  t.equal(res.headers.get('cache-control'), 'private')
  t.equal(res.headers.get('content-encoding'), null)
  const text = await res.text()
  t.same(
    JSON.parse(text).data.map((m: { id: string }) => m.id),
    ['gpt-4o-mini', 'claude-test-small'],
  )
  const length = res.headers.get('content-length')
  if (length !== null)
    t.equal(Number(length), Buffer.byteLength(text), 'a length, when sent, is the filtered one')
  const list = s.upstream.received.filter((r) => r.path === '/v1/models')
  t.equal(list.at(-1)?.headers['accept-encoding'], 'identity', 'the list is asked for uncompressed')
  t.equal(list[1]?.headers['x-api-key'], s.keys.anthropic, 'the Anthropic list goes with the Anthropic key')

  // Two OpenAI-shaped lists and one Anthropic-shaped: a model left out is audited once per shape for this
  // subject, not once per list.
  const perModel = new Map<string, number>()
  for (const e of seen.filter((e) => e.action === 'llm.model' && e.decision === 'deny'))
    perModel.set(e.resource, (perModel.get(e.resource) ?? 0) + 1)
  t.ok(perModel.size > 0, 'models left out are audited')
  t.same(new Set(perModel.values()), new Set([2]), 'each once per list shape')
})

t.test('bad bodies are refused with a code before anything is forwarded', async (t) => {
  const s = await setup(t, { llm: '  bodyLimit: 2048\n  maxDepth: 8\n' })
  const url = `${s.outbound}/v1/chat/completions`
  const cases: [string, string | Buffer, string, number][] = [
    ['not JSON', '{"model": gpt-4o-mini}', 'SVD_LLM_REQUEST_INVALID', 400],
    ['not an object', '["gpt-4o-mini"]', 'SVD_LLM_REQUEST_INVALID', 400],
    ['no model', '{"messages":[]}', 'SVD_LLM_REQUEST_INVALID', 400],
    ['a number as model', '{"model":4}', 'SVD_LLM_REQUEST_INVALID', 400],
    ['stream as a string', '{"model":"gpt-4o-mini","stream":"true"}', 'SVD_LLM_REQUEST_INVALID', 400],
    ['a fractional max_tokens', '{"model":"gpt-4o-mini","max_tokens":1.5}', 'SVD_LLM_REQUEST_INVALID', 400],
    ['duplicate model', '{"model":"gpt-4o-mini","model":"gpt-4o"}', 'SVD_LLM_REQUEST_INVALID', 400],
    ['escaped duplicate', '{"model":"gpt-4o-mini","mod\\u0065l":"gpt-4o"}', 'SVD_LLM_REQUEST_INVALID', 400],
    ['nested duplicate', '{"model":"gpt-4o-mini","m":[{"a":1,"a":2}]}', 'SVD_LLM_REQUEST_INVALID', 400],
    ['__proto__', '{"model":"gpt-4o-mini","x":{"__proto__":{"admin":true}}}', 'SVD_LLM_REQUEST_INVALID', 400],
    [
      'constructor.prototype',
      '{"model":"gpt-4o-mini","constructor":{"prototype":{}}}',
      'SVD_LLM_REQUEST_INVALID',
      400,
    ],
    [
      'too deep',
      `{"model":"gpt-4o-mini","x":${'['.repeat(20)}${']'.repeat(20)}}`,
      'SVD_LLM_REQUEST_INVALID',
      400,
    ],
    ['oversized', `{"model":"gpt-4o-mini","x":"${'a'.repeat(4096)}"}`, 'SVD_REQUEST_BODY_TOO_LARGE', 413],
  ]
  for (const [what, body, code, status] of cases) {
    const res = await post(url, body)
    t.equal(res.status, status, what)
    const parsed = JSON.parse(res.body) as { error: { code: string; type: string; message: string } }
    t.equal(parsed.error.code, code, `${what}: ${parsed.error.message}`)
    t.equal(res.headers['x-svidecar-error'], code, what)
  }
  const messages = await post(`${s.outbound}/v1/messages`, '{"model":"claude-test-small","model":"x"}', {
    'anthropic-version': '2023-06-01',
  })
  t.same(JSON.parse(messages.body), {
    type: 'error',
    error: {
      type: 'invalid_request_error',
      message: 'the body has the key "model" twice',
      details: { error_code: 'SVD_LLM_REQUEST_INVALID' },
    },
  })
  const gz = await post(url, '{"model":"gpt-4o-mini"}', { 'content-encoding': 'gzip' })
  t.equal(JSON.parse(gz.body).error.code, 'SVD_LLM_REQUEST_INVALID')
  t.equal(s.upstream.received.length, 0, 'nothing was forwarded')

  const { openai } = clients(s)
  const files = await openai.files.list().catch((e: unknown) => e)
  t.equal(
    (files as InstanceType<typeof OpenAI.APIError>).code,
    'SVD_LLM_ENDPOINT_UNKNOWN',
    'unknown endpoints are denied',
  )
  t.equal(s.upstream.received.length, 0)
})

t.test('unknown paths can be forwarded, and then the policy decides their route', async (t) => {
  const s = await setup(t, {
    llm: '  unknownPaths: forward\n',
    policy: `${POLICY}  - id: files
    effect: allow
    subjects: [${AGENT}]
    resources: [{ kind: http.route, methods: [GET], path: /v1/files }]
`,
  })
  const ok = await fetch(`${s.outbound}/v1/files`, { headers: { authorization: `Bearer ${AGENT_KEY}` } })
  t.equal(ok.status, 404, "the provider's own answer")
  t.equal(s.upstream.received.at(-1)?.headers.authorization, `Bearer ${s.keys.openai}`)
  const denied = await fetch(`${s.outbound}/v1/batches`)
  t.equal(denied.status, 403)
  t.equal(((await denied.json()) as { error: { code: string } }).error.code, 'SVD_POLICY_DENIED')
})

t.test(
  'a provider key file: missing means a clear refusal, a rotation is picked up, a bad one keeps the last',
  async (t) => {
    const s = await setup(t)
    const { openai } = clients(s)
    const call = () =>
      openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    await call()
    t.equal(s.upstream.received.at(-1)?.headers.authorization, `Bearer ${s.keys.openai}`)

    const rotated = `sk-rotated-${randomBytes(8).toString('hex')}`
    writeFileSync(s.openaiKeyFile, rotated)
    await waitFor(
      async () => {
        await call()
        return s.upstream.received.at(-1)?.headers.authorization === `Bearer ${rotated}`
      },
      'the rotated key',
      10_000,
      100,
    )
    t.pass('the rotated key is used without a restart')

    writeFileSync(s.openaiKeyFile, '\n')
    await waitFor(() => s.logs.text.includes('provider key unusable'), 'the refused reload', 10_000, 50)
    await call()
    t.equal(
      s.upstream.received.at(-1)?.headers.authorization,
      `Bearer ${rotated}`,
      'an empty file keeps the last key',
    )
    t.notOk(s.logs.text.includes(rotated), 'the key is never logged')
    t.notOk(s.logs.text.includes(s.keys.openai), 'nor the first one')
  },
)

t.test(
  'a provider whose key never loaded refuses its calls with SVD_LLM_CREDENTIAL_UNAVAILABLE',
  async (t) => {
    const s = await setup(t, { writeKey: false })
    const { openai, anthropic } = clients(s)
    const call = () =>
      openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    const err = await call().catch((e: unknown) => e)
    t.type(err, OpenAI.APIError)
    t.equal((err as InstanceType<typeof OpenAI.APIError>).status, 503)
    t.equal((err as InstanceType<typeof OpenAI.APIError>).code, 'SVD_LLM_CREDENTIAL_UNAVAILABLE')
    t.notMatch((err as Error).message, /openai-key/, 'the agent is not told where the key lives')
    t.match(s.logs.text, /provider key unusable/, 'the log says why')
    const message = await anthropic.messages.create({
      model: 'claude-test-small',
      max_tokens: 1,
      messages: [{ role: 'user', content: 'hi' }],
    })
    t.equal(message.type, 'message', 'the other provider still works')
    t.equal(s.upstream.received.filter((r) => r.path === '/v1/chat/completions').length, 0)

    writeFileSync(s.openaiKeyFile, s.keys.openai)
    await waitFor(
      () =>
        call().then(
          () => true,
          () => false,
        ),
      'the key to load',
      10_000,
      100,
    )
    t.equal(
      s.upstream.received.at(-1)?.headers.authorization,
      `Bearer ${s.keys.openai}`,
      'a key that appears is used',
    )
  },
)

t.test('a model list the filter cannot read becomes an empty list; a compressed one is read', async (t) => {
  // A stand-in provider that answers the model list in ways the real ones do not (the local model server
  // always answers well): compressed although the sidecar asked for identity, not JSON, ambiguous JSON.
  let answer: { headers: Record<string, string>; body: Buffer } = { headers: {}, body: Buffer.alloc(0) }
  const odd = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', ...answer.headers })
    res.end(answer.body)
  })
  odd.listen(0, '127.0.0.1')
  await once(odd, 'listening')
  t.teardown(() => odd.close())
  const s = await setup(t, { upstreamUrl: `http://127.0.0.1:${(odd.address() as AddressInfo).port}` })
  const list = async () => {
    const res = await fetch(`${s.outbound}/v1/models`)
    t.equal(res.headers.get('cache-control'), 'private')
    return ((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id)
  }
  const models = JSON.stringify({
    object: 'list',
    data: ['gpt-4o', 'gpt-4o-mini'].map((id) => ({ id, object: 'model', created: 0, owned_by: 'x' })),
  })
  answer = { headers: { 'content-encoding': 'gzip' }, body: gzipSync(models) }
  t.same(await list(), ['gpt-4o-mini'], 'gzip is decoded and filtered')
  answer = { headers: {}, body: Buffer.from('{"object":"list","data":[{"id":"gpt-4o"}') }
  t.same(await list(), [], 'not JSON: nothing shown')
  answer = { headers: {}, body: Buffer.from('{"object":"list","data":[],"data":[{"id":"gpt-4o"}]}') }
  t.same(await list(), [], 'a duplicate key: nothing shown')
  answer = { headers: { 'content-encoding': 'zstd-unknown' }, body: Buffer.from(models) }
  t.same(await list(), [], 'an unknown encoding: nothing shown')
})

t.test('one model is decided like a call to it: GET /v1/models/<id>', async (t) => {
  const s = await setup(t)
  const { openai } = clients(s)
  const denied = await openai.models.retrieve('gpt-4o').catch((e: unknown) => e)
  t.equal((denied as InstanceType<typeof OpenAI.APIError>).code, 'SVD_POLICY_DENIED')
  t.equal(s.upstream.received.length, 0, 'a denied model is not even described')
  // The local model server has no such endpoint: its own 404 shows the request got through, with the key.
  const allowed = await openai.models.retrieve('gpt-4o-mini').catch((e: unknown) => e)
  t.equal((allowed as InstanceType<typeof OpenAI.APIError>).status, 404)
  t.equal((allowed as InstanceType<typeof OpenAI.APIError>).headers?.get('x-svidecar-error'), null)
  t.equal(s.upstream.received.at(-1)?.path, '/v1/models/gpt-4o-mini')
  t.equal(s.upstream.received.at(-1)?.headers.authorization, `Bearer ${s.keys.openai}`)
  const nested = await fetch(`${s.outbound}/v1/models/gpt-4o-mini/extra`)
  t.equal(((await nested.json()) as { error: { code: string } }).error.code, 'SVD_LLM_ENDPOINT_UNKNOWN')
})
