// PolicyStore: reload on change, the last good policy kept when a reload fails, counts and events.
import { renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { SpiffeId } from 'workload-api-client'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import type { PolicyRequest } from '../../src/policy/engine.ts'
import { onPolicyReload, type PolicyReloadEvent } from '../../src/policy/events.ts'
import { PolicyStore } from '../../src/policy/store.ts'

const policy = (tool: string) => `version: 1
rules:
  - id: allow-${tool}
    effect: allow
    subjects: [spiffe://example.org/a]
    resources: [{ kind: mcp.tool, name: ${tool} }]
`

const ask = (tool: string): PolicyRequest => ({
  subject: SpiffeId.parse('spiffe://example.org/a'),
  resource: { kind: 'mcp.tool', name: tool },
  context: { time: new Date() },
})

function setup(t: Test, initial: string, options = {}) {
  const dir = t.testdir()
  const file = join(dir, 'policy.yaml')
  writeFileSync(file, initial)
  const events: PolicyReloadEvent[] = []
  t.teardown(onPolicyReload((e) => events.push(e)))
  const store = PolicyStore.open(file, { debounceMs: 5, ...options })
  t.teardown(() => store.close())
  return { dir, file, store, events }
}

t.test('a good file replaces the policy in force', async (t) => {
  const { file, store, events } = setup(t, policy('search'))
  t.equal(store.decide(ask('search')).decision, 'allow')
  t.same(store.counts, { success: 1, failure: 0 })
  writeFileSync(file, policy('fetch'))
  await waitFor(() => store.counts.success === 2, 'the reload')
  t.equal(store.decide(ask('fetch')).decision, 'allow')
  t.equal(store.decide(ask('search')).decision, 'deny')
  t.equal(store.decide(ask('fetch')).ruleId, 'allow-fetch')
  t.match(events.at(-1), { result: 'success', rules: 1, source: file })
})

t.test('a bad file keeps the last good policy, counts the failure and says why', async (t) => {
  const { file, store, events } = setup(t, policy('search'))
  writeFileSync(file, `${policy('fetch')}    efect: deny\n`)
  await waitFor(() => store.counts.failure === 1, 'the failed reload')
  t.equal(store.decide(ask('search')).decision, 'allow', 'the old policy still decides')
  t.equal(store.decide(ask('fetch')).decision, 'deny', 'nothing of the bad file applies')
  t.equal(store.counts.success, 1)
  t.match(store.lastError, { code: 'SVD_POLICY_INVALID' })
  t.match(events.at(-1), { result: 'failure', code: 'SVD_POLICY_INVALID', rules: 1 })
  t.match(events.at(-1)?.message, /rules\[0\]\.efect/)
  // Fixing the file recovers.
  writeFileSync(file, policy('fetch'))
  await waitFor(() => store.counts.success === 2, 'the good reload')
  t.equal(store.decide(ask('fetch')).decision, 'allow')
  t.equal(store.lastError, undefined)
})

t.test('a file replaced by rename (editors, ConfigMaps) is picked up', async (t) => {
  const { dir, file, store } = setup(t, policy('search'))
  const tmp = join(dir, '.policy.yaml.tmp')
  writeFileSync(tmp, policy('rename'))
  renameSync(tmp, file)
  await waitFor(() => store.decide(ask('rename')).decision === 'allow', 'the renamed file')
  t.equal(store.counts.failure, 0)
})

t.test('a deleted file keeps the last good policy', async (t) => {
  const { file, store } = setup(t, policy('search'))
  rmSync(file)
  await waitFor(() => store.counts.failure === 1, 'the failed reload')
  t.match(store.lastError, { code: 'SVD_POLICY_UNREADABLE' })
  t.equal(store.decide(ask('search')).decision, 'allow')
})

t.test(
  'a file grown over the size cap is refused without being read; the last good policy stays',
  async (t) => {
    const { file, store } = setup(t, policy('search'), { maxBytes: 64 * 1024 })
    truncateSync(file, 100 * 1024 * 1024)
    await waitFor(() => store.counts.failure === 1, 'the failed reload')
    t.match(store.lastError, { code: 'SVD_POLICY_UNREADABLE', reason: 'TOO_LARGE' })
    t.equal(store.decide(ask('search')).decision, 'allow')
  },
)

t.test('the poll notices a change even without a watch event', async (t) => {
  const { file, store } = setup(t, policy('search'), { pollMs: 10 })
  writeFileSync(file, policy('polled'))
  // Either path may fire first; what matters is that the change lands.
  await waitFor(() => store.decide(ask('polled')).decision === 'allow', 'the polled reload')
})

t.test('an unchanged file is not reloaded', async (t) => {
  const { store } = setup(t, policy('search'))
  t.equal(store.reload(), true)
  t.same(store.counts, { success: 1, failure: 0 })
})

t.test('the first load: a bad file throws by default, or starts denying everything', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'bad.yaml')
  writeFileSync(file, 'version: 1\nrules: [1]\n')
  t.throws(() => PolicyStore.open(file), { code: 'SVD_POLICY_INVALID' })
  const store = PolicyStore.open(file, { onInitialFailure: 'deny-all', debounceMs: 5 })
  t.teardown(() => store.close())
  t.equal(store.current, undefined)
  t.match(store.decide(ask('search')), { decision: 'deny', mode: 'enforce' })
  writeFileSync(file, policy('search'))
  await waitFor(() => store.counts.success === 1, 'the first good load')
  t.equal(store.decide(ask('search')).decision, 'allow')
})
