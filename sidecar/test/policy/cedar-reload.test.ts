// A Cedar policy file reloads like the built-in one: a changed file replaces the set in force, a bad one keeps the
// last good set, is counted as a failed reload, and says why; through the same openPolicy the sidecar uses.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { createMetrics } from '../../src/observe/metrics.ts'
import type { PolicyDecision, PolicyRequest } from '../../src/policy/engine.ts'
import { onPolicyReload, type PolicyReloadEvent } from '../../src/policy/events.ts'
import { openPolicy } from '../../src/policy/open.ts'

const policy = (tool: string) => `@id("allow-${tool}")
permit (
  principal == Spiffe::Workload::"spiffe://example.org/a",
  action == Spiffe::Action::"mcp.tool",
  resource == Spiffe::Tool::"${tool}"
);
`

const ask = (tool: string): PolicyRequest => ({
  subject: SpiffeId.parse('spiffe://example.org/a'),
  resource: { kind: 'mcp.tool', name: tool },
  context: { time: new Date() },
})

t.test('a changed Cedar file is reloaded; a bad one keeps the last good set and is counted', async (t) => {
  const file = join(t.testdir(), 'policy.cedar')
  writeFileSync(file, policy('search'))
  const events: PolicyReloadEvent[] = []
  t.teardown(onPolicyReload((e) => events.push(e)))
  const opened = openPolicy({ engine: 'cedar', file })
  t.teardown(() => opened.close())
  const store = opened.store
  if (store === undefined) throw new Error('a Cedar policy has a store')
  const decide = (tool: string) => opened.engine.decide(ask(tool)) as PolicyDecision
  t.equal(opened.engine.name, 'cedar')
  t.match(decide('search'), { decision: 'allow', ruleId: 'allow-search', engine: 'cedar' })
  t.equal(decide('fetch').decision, 'deny')
  t.equal(store.rules, 1)

  writeFileSync(file, `${policy('fetch')}${policy('write')}`)
  await waitFor(() => store.counts.success === 2, 'the reload', 15_000)
  t.match(decide('fetch'), { decision: 'allow', ruleId: 'allow-fetch' })
  t.equal(decide('search').decision, 'deny', 'the old set is gone')
  t.equal(store.rules, 2)
  t.match(events.at(-1), { source: file, result: 'success', rules: 2 })

  // A syntax error: the set in force stays, the failure is counted and says where.
  writeFileSync(file, `${policy('other')}permit (principal, action, resource) when { 1 + };\n`)
  await waitFor(() => store.counts.failure === 1, 'the failed reload', 15_000)
  t.match(decide('fetch'), { decision: 'allow', ruleId: 'allow-fetch' }, 'the last good set still decides')
  t.equal(decide('other').decision, 'deny', 'nothing of the bad file applies')
  t.match(store.lastError, { code: 'SVD_POLICY_INVALID' })
  t.match(events.at(-1), { source: file, result: 'failure', code: 'SVD_POLICY_INVALID', rules: 2 })
  t.match(events.at(-1)?.message, /policy\.cedar:7:/, 'names the file and line')
  const metrics = createMetrics({
    owner: 'cedar-reload-test',
    inbound: new Set(),
    outbound: new Set(),
    policy: store,
  })
  t.match(
    await metrics.registry.metrics(),
    /svidecar_policy_reloads_total\{result="failure"\} 1\n/,
    'the failure is in the reload counter',
  )

  // Fixing the file recovers.
  writeFileSync(file, policy('other'))
  await waitFor(() => store.counts.success === 3, 'the good reload', 15_000)
  t.match(decide('other'), { decision: 'allow', ruleId: 'allow-other' })
})

t.test('a Cedar file that does not load at start still refuses to start', async (t) => {
  const file = join(t.testdir(), 'policy.cedar')
  writeFileSync(file, 'permit (principal, action, resource) when { 1 + };\n')
  t.throws(() => openPolicy({ engine: 'cedar', file }), { code: 'SVD_POLICY_INVALID' })
})
