// Anthropic's model list is paged (20 by default). A subject allowed a few models among many must still find
// them with the official SDK's auto-pagination, which stops at the first empty page: the sidecar asks the
// provider for its largest page and cuts the client's page from the models the subject may use.
import Anthropic from '@anthropic-ai/sdk'
import t from 'tap'
import { AGENT, startLlmSidecar } from '../helpers/llm-sidecar.ts'
import { startLlmUpstream } from '../helpers/llm-upstream.ts'

const MODELS = Array.from({ length: 50 }, (_, i) => `claude-m-${String(i).padStart(2, '0')}`)
// The allowed models are the last ten of fifty: none of them is on the provider's first default page.
const POLICY = `version: 1
rules:
  - id: late-models
    effect: allow
    subjects: [${AGENT}]
    resources: [{ kind: llm.model, name: "claude-m-4*" }]
`
const ALLOWED = MODELS.slice(40)

t.test('auto-pagination finds every allowed model, page by page', async (t) => {
  const upstream = await startLlmUpstream({ models: MODELS })
  t.teardown(() => upstream.close())
  const s = await startLlmSidecar(t, { policy: POLICY, upstreamUrl: upstream.url })
  const anthropic = new Anthropic({ baseURL: s.outbound, apiKey: 'sk-agent', maxRetries: 0 })

  const all: string[] = []
  for await (const m of anthropic.models.list()) all.push(m.id)
  t.same(all, ALLOWED, 'the default page holds the allowed models')

  const pages: string[][] = []
  for await (const page of (await anthropic.models.list({ limit: 3 })).iterPages()) {
    pages.push(page.data.map((m) => m.id))
  }
  t.same(
    pages,
    [ALLOWED.slice(0, 3), ALLOWED.slice(3, 6), ALLOWED.slice(6, 9), ALLOWED.slice(9)],
    'pages of the size asked for, each continuing after the last model shown',
  )
  const first = await anthropic.models.list({ limit: 3 })
  t.equal(first.has_more, true, 'more allowed models were left out of the page')
  t.equal(first.last_id, 'claude-m-42')

  const back = await anthropic.models.list({ limit: 2, before_id: 'claude-m-45' })
  t.same(
    back.data.map((m) => m.id),
    ['claude-m-43', 'claude-m-44'],
    'a backward page ends just before the id it names',
  )

  const asked = upstream.received.filter((r) => r.path === '/v1/models').map((r) => r.target)
  t.ok(
    asked.every((target) => new URL(target, 'http://x').searchParams.get('limit') === '1000'),
    "the provider's largest page was asked for each time",
  )
  const bad = await fetch(`${s.outbound}/v1/models?limit=5000`, {
    headers: { 'anthropic-version': '2023-06-01' },
  })
  t.equal(bad.status, 400, "a limit the provider does not take is the provider's to refuse")
})
