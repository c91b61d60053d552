// Provider keys an agent puts in the query string are dropped before anything goes upstream, and an Anthropic
// model page that the filter empties keeps the provider's has_more.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { stripCredentialParams } from '../src/lens/llm/query.ts'
import { startLlmSidecar } from './helpers/llm-sidecar.ts'

t.test('stripCredentialParams drops api-key, key and api_key, keeping the rest as it was', async (t) => {
  t.equal(stripCredentialParams('/v1/models'), '/v1/models')
  t.equal(stripCredentialParams('/v1/models?limit=2'), '/v1/models?limit=2', 'nothing to drop: unchanged')
  t.equal(stripCredentialParams('/v1/models?key=sk-1'), '/v1/models', 'no parameter left: no `?`')
  t.equal(
    stripCredentialParams('/v1/x?a=%20b&api-key=sk-1&c&API_KEY=sk-2&d=1&Key=sk-3'),
    '/v1/x?a=%20b&c&d=1',
    'case-insensitive, order and encoding of the rest kept',
  )
  t.equal(
    stripCredentialParams('/v1/x?api%2Dkey=sk-1&b=2'),
    '/v1/x?b=2',
    'a percent-encoded name is read decoded',
  )
  t.equal(stripCredentialParams('/v1/x?api_key'), '/v1/x', 'a name without a value')
  t.equal(stripCredentialParams('/v1/x?keys=1&monkey=2'), '/v1/x?keys=1&monkey=2', 'only whole names')
  t.equal(stripCredentialParams('/v1/x?key%ZZ=1'), '/v1/x?key%ZZ=1', 'a malformed name is compared as it is')
})

t.test('through the sidecar: the provider never sees a key the agent put in the query', async (t) => {
  const s = await startLlmSidecar(t)
  const res = await fetch(`${s.outbound}/v1/chat/completions?api-key=sk-agent-q1&x=1&key=sk-agent-q2`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
  })
  t.equal(res.status, 200)
  await res.text()
  const list = await fetch(`${s.outbound}/v1/models?api_key=sk-agent-q3`)
  t.equal(list.status, 200)
  await list.text()
  const targets = s.upstream.received.map((r) => r.target)
  t.same(targets, ['/v1/chat/completions?x=1', '/v1/models'])
  t.notMatch(targets.join(' '), /sk-agent/, 'no agent key reached the provider')
  t.equal(
    s.upstream.received[0]?.headers.authorization,
    `Bearer ${s.keys.openai}`,
    "the sidecar's key went instead",
  )
})

t.test('an Anthropic model page the filter empties keeps has_more from the provider', async (t) => {
  const seen: string[] = []
  // A provider page of denied models only, with more pages behind it.
  const provider = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    seen.push(url.search)
    const page =
      url.pathname === '/v1/models' && !url.searchParams.has('after_id')
        ? {
            data: [{ type: 'model', id: 'claude-test-large' }],
            has_more: true,
            first_id: 'claude-test-large',
            last_id: 'claude-test-large',
          }
        : { data: [], has_more: false, first_id: null, last_id: null }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(page))
  })
  provider.listen(0, '127.0.0.1')
  await once(provider, 'listening')
  t.teardown(() => provider.close())
  const s = await startLlmSidecar(t, {
    upstreamUrl: `http://127.0.0.1:${(provider.address() as AddressInfo).port}`,
  })
  const res = await fetch(`${s.outbound}/v1/models`, { headers: { 'anthropic-version': '2023-06-01' } })
  t.equal(res.status, 200)
  t.same(await res.json(), { data: [], has_more: true, first_id: null, last_id: null })
  t.same(seen, ['?limit=1000'], "the provider's largest page was asked for")
})
