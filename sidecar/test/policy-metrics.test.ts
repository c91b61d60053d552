// The policy metrics: decisions, decision latency, reloads, audit write errors; bounded labels; promtool-clean.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { parseConfig } from '../src/config/index.ts'
import { type PolicyDecisionEvent, publishPolicyDecision } from '../src/observe/events.ts'
import { createLogger } from '../src/observe/log.ts'
import { createMetrics } from '../src/observe/metrics.ts'
import { publishPolicyReload } from '../src/policy/events.ts'
import { Sidecar } from '../src/sidecar.ts'

const AGENT = 'spiffe://example.org/agent'
const MCP = 'spiffe://example.org/mcp'

type Overrides = { [K in keyof PolicyDecisionEvent]?: PolicyDecisionEvent[K] | undefined }

/** A decision as the policy stage publishes it; an override of `undefined` leaves the field out. */
function decision(over: Overrides = {}): PolicyDecisionEvent {
  const e: Record<string, unknown> = {
    time: new Date(),
    listener: 'public',
    direction: 'inbound',
    subject: AGENT,
    peer: MCP,
    action: 'http.route',
    resource: 'GET /tools/list',
    decision: 'allow',
    ruleId: 'agents-list-tools',
    reason: 'rule agents-list-tools allows GET /tools/list',
    mode: 'enforce',
    engine: 'builtin',
    latencyMs: 0.004,
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    ...over,
  }
  for (const [k, v] of Object.entries(e)) if (v === undefined) delete e[k]
  return e as unknown as PolicyDecisionEvent
}

const scope = { owner: 'test', inbound: new Set(['public']), outbound: new Set(['egress']) }

/** `name{labels} value` lines of one metric family, labels as written. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (m?.[1] === name) out.set(m[2] ?? '', Number(m[3]))
  }
  return out
}

t.test(
  'decisions are counted by action, decision, engine and mode; latency in a microsecond histogram',
  async (t) => {
    const metrics = createMetrics(scope)
    t.teardown(metrics.subscribe())
    publishPolicyDecision(decision())
    publishPolicyDecision(decision({ latencyMs: 0.02 }))
    publishPolicyDecision(decision({ decision: 'deny', ruleId: 'no-admin', resource: 'POST /admin' }))
    publishPolicyDecision(
      decision({ decision: 'allow', wouldDeny: true, mode: 'audit', action: 'mcp.tool', engine: 'cedar' }),
    )
    publishPolicyDecision(decision({ action: 'made.up', engine: 'Not An Engine {}', latencyMs: 3 }))
    // Another sidecar's listener in the same process, and a direction this scope does not own.
    publishPolicyDecision(decision({ listener: 'someone-else' }))
    publishPolicyDecision(decision({ direction: 'outbound' }))
    const text = await metrics.registry.metrics()
    const decisions = samples(text, 'svidecar_policy_decisions_total')
    t.same(
      Object.fromEntries(decisions),
      {
        '{action="http.route",decision="allow",engine="builtin",mode="enforce"}': 2,
        '{action="http.route",decision="deny",engine="builtin",mode="enforce"}': 1,
        '{action="mcp.tool",decision="would_deny",engine="cedar",mode="audit"}': 1,
        '{action="other",decision="allow",engine="other",mode="enforce"}': 1,
      },
      'only this scope, only closed label values',
    )
    const buckets = samples(text, 'svidecar_policy_decision_duration_seconds_bucket')
    t.equal(buckets.get('{le="0.000005",engine="builtin"}'), 2, '4 µs and 4 µs fall in the 5 µs bucket')
    t.equal(buckets.get('{le="0.00005",engine="builtin"}'), 3, '20 µs in the 50 µs one')
    t.equal(buckets.get('{le="0.0025",engine="builtin"}'), 3)
    t.equal(buckets.get('{le="0.005",engine="other"}'), 1, '3 ms')
    t.equal(samples(text, 'svidecar_policy_decision_duration_seconds_count').get('{engine="builtin"}'), 3)
    t.notOk(text.includes('spiffe://'), 'no SPIFFE ID in any label')
    t.notOk(text.includes('agents-list-tools') || text.includes('no-admin'), 'no rule id by default')
  },
)

t.test('rule ids become a label only when the config asks for it', async (t) => {
  const metrics = createMetrics(scope, { policyRuleLabel: true })
  t.teardown(metrics.subscribe())
  publishPolicyDecision(decision())
  publishPolicyDecision(decision({ decision: 'deny', ruleId: undefined, reason: 'default deny' }))
  const decisions = samples(await metrics.registry.metrics(), 'svidecar_policy_decisions_total')
  t.same([...decisions.keys()].sort(), [
    '{action="http.route",decision="allow",engine="builtin",mode="enforce",rule="agents-list-tools"}',
    '{action="http.route",decision="deny",engine="builtin",mode="enforce",rule=""}',
  ])
})

t.test('policy reloads by result, from the store’s channel; audit write errors', async (t) => {
  const metrics = createMetrics({
    ...scope,
    policy: { path: '/etc/svidecar/policy.yaml', counts: { success: 0, failure: 0 } },
  })
  t.teardown(metrics.subscribe())
  const before = samples(await metrics.registry.metrics(), 'svidecar_policy_reloads_total')
  t.same(
    Object.fromEntries(before),
    { '{result="success"}': 0, '{result="failure"}': 0 },
    'both series from the start',
  )
  publishPolicyReload({ source: '/etc/svidecar/policy.yaml', result: 'success', rules: 3 })
  publishPolicyReload({
    source: '/etc/svidecar/policy.yaml',
    result: 'failure',
    rules: 3,
    code: 'SVD_POLICY_INVALID',
    message: 'policy.yaml:4:3: rules[0].id: duplicate',
  })
  publishPolicyReload({ source: '/etc/svidecar/policy.yaml', result: 'failure', rules: 3 })
  publishPolicyReload({ source: '/somebody/else.yaml', result: 'failure', rules: 0 })
  metrics.auditLinesLost(3)
  const text = await metrics.registry.metrics()
  t.same(Object.fromEntries(samples(text, 'svidecar_policy_reloads_total')), {
    '{result="success"}': 1,
    '{result="failure"}': 2,
  })
  t.equal(samples(text, 'svidecar_audit_write_errors_total').get(''), 3)
})

t.test('promtool accepts the exposition', async (t) => {
  const metrics = createMetrics(scope, { policyRuleLabel: true })
  t.teardown(metrics.subscribe())
  publishPolicyDecision(decision())
  publishPolicyReload({ source: 'p.yaml', result: 'success', rules: 1 })
  // The sidecar's own families; prom-client's process and nodejs_* defaults are not ours to rename.
  const text = (await metrics.registry.metrics())
    .split('\n')
    .filter((l) => /^(# (HELP|TYPE) )?svidecar_/.test(l))
    .join('\n')
  t.match(text, /svidecar_policy_decisions_total\{/)
  // promtool exits non-zero on a malformed exposition or a lint problem (names, units, help).
  const out = execFileSync('promtool', ['check', 'metrics'], { input: `${text}\n`, encoding: 'utf8' })
  t.equal(out.trim(), '', 'no lint findings')
})

t.test('a sidecar counts the audit lines it cannot write and keeps serving', async (t) => {
  const dir = t.testdir()
  const config = parseConfig(
    `
workloadApi: { socket: "unix:///nonexistent/agent.sock" }
admin: { address: "127.0.0.1:0" }
drainTimeout: 1s
inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "http://127.0.0.1:9"
    authorize: { any: true }
audit: { output: file, path: "${join(dir, 'no-such-dir', 'audit.log')}" }
`,
    'audit.yaml',
    {},
  )
  let logged = ''
  const logger = createLogger({ level: 'error', stream: { write: (l: string) => (logged += l) } })
  const sidecar = await Sidecar.start(config, { logger })
  t.teardown(() => sidecar.destroy())
  for (let i = 0; i < 4; i++) publishPolicyDecision(decision())
  const url = `http://127.0.0.1:${sidecar.addresses.admin.port}/metrics`
  const deadline = Date.now() + 5000
  let count: number | undefined
  while (Date.now() < deadline) {
    count = samples(await (await fetch(url)).text(), 'svidecar_audit_write_errors_total').get('')
    if (count === 4) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.equal(count, 4, 'every lost line counted')
  t.equal(
    (await fetch(`http://127.0.0.1:${sidecar.addresses.admin.port}/healthz`)).status,
    200,
    'still serving',
  )
  t.equal(logged.split('\n').filter((l) => l.includes('audit log write failed')).length, 1, 'logged once')
  await sidecar.close()
})
