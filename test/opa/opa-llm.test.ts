// The LLM lens with engine: opa: the model of each call and every model of a list are decided by a real
// OPA server, asynchronously; the list waits for its decisions and shows only the allowed models.
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import t from 'tap'
import { startLlmSidecar } from '../../sidecar/test/helpers/llm-sidecar.ts'
import { startOpa } from '../harness/opa.ts'
import { requireOpa } from '../harness/opa-available.ts'

const REGO = `package svidecar.llm

default allow := false

allow if {
  input.action == "llm.model"
  input.resource.name in {"gpt-4o-mini", "claude-test-small"}
}

rule_id := "small-models" if allow
`

t.test('engine: opa decides models, and filters model lists', async (t) => {
  if (!requireOpa(t)) return
  const opa = await startOpa(t, { 'llm.rego': REGO })
  const s = await startLlmSidecar(t, {
    policyConfig: `{ engine: opa, opa: { url: "${opa.url}", package: svidecar.llm, timeout: 2s, cacheEntries: 0 } }`,
  })
  const openai = new OpenAI({ baseURL: `${s.outbound}/v1`, apiKey: 'unused', maxRetries: 0 })
  const anthropic = new Anthropic({ baseURL: s.outbound, apiKey: 'unused', maxRetries: 0 })

  const ok = await openai.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hi' }],
  })
  t.equal(ok.choices[0]?.message.content, 'tok tok tok tok tok')
  const denied = await openai.chat.completions
    .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
    .catch((e: unknown) => e)
  t.equal((denied as InstanceType<typeof OpenAI.APIError>).code, 'SVD_POLICY_DENIED')

  const ids: string[] = []
  for await (const m of openai.models.list()) ids.push(m.id)
  t.same(ids, ['gpt-4o-mini', 'claude-test-small'])
  const page = await anthropic.models.list()
  t.same(
    page.data.map((m) => m.id),
    ['gpt-4o-mini', 'claude-test-small'],
  )

  await opa.stop()
  const gone: string[] = []
  for await (const m of openai.models.list()) gone.push(m.id)
  t.same(gone, [], 'no decision service: the list shows nothing')
})
