import t from 'tap'
import { AGENT, startDevApi, startGateway } from '../helpers/llm-gateway.ts'
import { startLlmUpstream } from '../helpers/llm-upstream.ts'

t.test('labels', async (t) => {
  const upstream = await startLlmUpstream()
  t.teardown(() => upstream.close())
  const gw = await startGateway(
    t,
    await startDevApi(t),
    upstream.url,
    `budgets:
  limits:
    - { name: per-model, subjects: ["${AGENT}"], tokensPerDay: 100000000, models: ["*"], perModel: true }
`,
  )
  for (let i = 0; i < 300; i++) {
    const r = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: `m-${i}`, messages: [], stream: i % 2 === 0 }),
    })
    await r.text()
    const r2 = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      body: JSON.stringify({ model: `n-${i}`, max_tokens: 2000000, messages: [] }),
    })
    await r2.text()
  }
  const admin = `http://127.0.0.1:${gw.sidecar.addresses.admin.port}`
  const text = await (await fetch(`${admin}/metrics`)).text()
  const lines = text.split('\n').filter((l) => !l.startsWith('#'))
  t.comment('lines', lines.length, lines.filter((l) => /m-\d|n-\d/.test(l)).length)
  t.comment(lines.filter((l) => l.includes('llm') || l.includes('policy')).join('\n'))
})
