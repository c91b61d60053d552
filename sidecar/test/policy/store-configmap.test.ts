// A Kubernetes ConfigMap volume: the file is a symlink through `..data`, which the kubelet swaps atomically to a
// new timestamped directory (kubernetes.md). The store must notice the swap from the directory watch alone, keep
// the last good policy when the new version is bad, and take the next good one.
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import type { PolicyRequest } from '../../src/policy/engine.ts'
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

t.test(
  'the ..data symlink swap is noticed without polling; a bad version keeps the last good one',
  async (t) => {
    const dir = t.testdir()
    let version = 0
    let current: string | undefined
    // What the kubelet's atomic writer does: a new directory, a ..data_tmp link to it, renamed over ..data.
    const publish = (text: string) => {
      const next = `..2026_11_30_10_00_0${version++}`
      mkdirSync(join(dir, next))
      writeFileSync(join(dir, next, 'policy.yaml'), text)
      symlinkSync(next, join(dir, '..data_tmp'))
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
      if (current !== undefined) rmSync(join(dir, current), { recursive: true })
      current = next
    }
    publish(policy('one'))
    symlinkSync('..data/policy.yaml', join(dir, 'policy.yaml'))
    const store = PolicyStore.open(join(dir, 'policy.yaml'), { debounceMs: 5, pollMs: 0 })
    t.teardown(() => store.close())
    t.equal(store.decide(ask('one')).decision, 'allow')

    publish(policy('two'))
    await waitFor(() => store.decide(ask('two')).decision === 'allow', 'the swapped policy')
    t.equal(store.decide(ask('one')).decision, 'deny')

    publish(`${policy('three')}    efect: deny\n`)
    await waitFor(() => store.counts.failure === 1, 'the rejected version')
    t.equal(store.decide(ask('two')).decision, 'allow', 'the last good policy stays')
    t.match(store.lastError, { code: 'SVD_POLICY_INVALID' })

    publish(policy('four'))
    await waitFor(() => store.decide(ask('four')).decision === 'allow', 'the next good version')
    t.same(store.counts, { success: 3, failure: 1 })
  },
)
