// Every credential an agent may send to a provider (protocols.md §10–11: Authorization, x-api-key, Azure's
// api-key, OpenAI-Organization/-Project, Google's x-goog-api-key, cookies, keys in the query) is stripped for
// both API styles and the sidecar's own key injected; `anthropic-version` is the agent's when it sent one and
// the provider's default otherwise. Neither the agent's keys nor the sidecar's appear in the sidecar's log, its
// audit lines or its metrics.
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import t from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { startLlmSidecar } from '../helpers/llm-sidecar.ts'

const agentKey = (what: string) => `sk-agent-${what}-${randomBytes(6).toString('hex')}`

t.test(
  'agent credentials never reach the provider; the sidecar key does, and no key is logged',
  async (t) => {
    let audit = ''
    const s = await startLlmSidecar(t, {
      auditStdout: new Writable({
        write(chunk, _encoding, done) {
          audit += String(chunk)
          done()
        },
      }),
    })
    const keys = {
      authorization: agentKey('auth'),
      xApiKey: agentKey('x'),
      apiKey: agentKey('azure'),
      goog: agentKey('goog'),
      query: agentKey('query'),
    }
    const agentHeaders = {
      'content-type': 'application/json',
      authorization: `Bearer ${keys.authorization}`,
      'x-api-key': keys.xApiKey,
      'api-key': keys.apiKey,
      'openai-organization': 'org-agent',
      'openai-project': 'proj-agent',
      'x-goog-api-key': keys.goog,
      cookie: 'session=agent',
    }
    const openai = await fetch(`${s.outbound}/v1/chat/completions?key=${keys.query}&keep=1`, {
      method: 'POST',
      headers: agentHeaders,
      body: '{"model":"gpt-4o-mini","messages":[]}',
    })
    t.equal(openai.status, 200)
    await openai.text()
    const toOpenAi = s.upstream.received.at(-1)
    t.equal(toOpenAi?.headers.authorization, `Bearer ${s.keys.openai}`)
    t.equal(toOpenAi?.target, '/v1/chat/completions?keep=1')
    for (const h of [
      'x-api-key',
      'api-key',
      'openai-organization',
      'openai-project',
      'x-goog-api-key',
      'cookie',
    ])
      t.equal(toOpenAi?.headers[h], undefined, `OpenAI-style: no ${h}`)

    for (const [version, expected] of [
      [undefined, '2023-06-01'],
      ['2023-01-01', '2023-01-01'],
    ] as const) {
      const res = await fetch(`${s.outbound}/v1/messages?api-key=${keys.query}`, {
        method: 'POST',
        headers: { ...agentHeaders, ...(version === undefined ? {} : { 'anthropic-version': version }) },
        body: '{"model":"claude-test-small","max_tokens":1,"messages":[]}',
      })
      t.equal(res.status, 200)
      await res.text()
      const toAnthropic = s.upstream.received.at(-1)
      t.equal(toAnthropic?.headers['x-api-key'], s.keys.anthropic)
      t.equal(toAnthropic?.target, '/v1/messages')
      t.equal(toAnthropic?.headers['anthropic-version'], expected, `anthropic-version ${version ?? 'absent'}`)
      for (const h of ['authorization', 'api-key', 'openai-organization', 'x-goog-api-key', 'cookie'])
        t.equal(toAnthropic?.headers[h], undefined, `Anthropic-style: no ${h}`)
    }

    const everything = JSON.stringify(s.upstream.received.map((r) => [r.target, r.headers]))
    for (const k of Object.values(keys)) t.notOk(everything.includes(k), 'no agent key reached the provider')

    await waitFor(() => (audit.match(/"llm\.usage"/g) ?? []).length === 3, 'the usage audit lines')
    const metrics = await (await fetch(`${s.admin}/metrics`)).text()
    for (const [where, text] of [
      ['log', s.logs.text],
      ['audit', audit],
      ['metrics', metrics],
    ] as const) {
      for (const k of [...Object.values(keys), s.keys.openai, s.keys.anthropic])
        t.notOk(text.includes(k), `no key in the ${where}`)
    }
  },
)
