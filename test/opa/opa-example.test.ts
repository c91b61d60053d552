// deploy/examples/policies/opa/mesh.rego on a real OPA server decides like the built-in engine on
// deploy/examples/policies/mesh.yaml, request by request, across subjects, resources and times of day.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createOpaEngine, loadPolicyFile, type PolicyRequest } from 'svidecar'
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { startOpa } from '../harness/opa.ts'
import { requireOpa } from '../harness/opa-available.ts'

const EXAMPLES = join(import.meta.dirname, '../../deploy/examples/policies')

const SUBJECTS = [
  'spiffe://example.org/ns/agents/sa/planner',
  'spiffe://example.org/ns/agents/sa/planner/child',
  'spiffe://example.org/ns/agents',
  'spiffe://example.org/ns/agents-admin/sa/x',
  'spiffe://example.org/billing',
  'spiffe://partner.example/billing',
  'spiffe://partner.example.evil/billing',
]

const RESOURCES: PolicyRequest['resource'][] = [
  { kind: 'http.route', method: 'GET', path: '/mcp' },
  { kind: 'http.route', method: 'POST', path: '/mcp' },
  { kind: 'http.route', method: 'DELETE', path: '/mcp' },
  { kind: 'http.route', method: 'PUT', path: '/mcp' },
  { kind: 'http.route', method: 'GET', path: '/mcp/x' },
  { kind: 'http.route', method: 'GET', path: '/v1/catalog/items' },
  { kind: 'http.route', method: 'GET', path: '/v1/catalog' },
  { kind: 'http.route', method: 'POST', path: '/v1/catalog/items' },
  { kind: 'http.route', method: 'GET', path: '/admin/users' },
  { kind: 'http.route', method: 'GET', path: '/%61dmin/users' },
  { kind: 'mcp.tool', name: 'search_web' },
  { kind: 'mcp.tool', name: 'admin_reset' },
  { kind: 'mcp.tool', name: 'search' },
  { kind: 'mcp.resource', uri: 'file:///docs/a/b.md' },
  { kind: 'mcp.resource', uri: 'file:///etc/passwd' },
  { kind: 'mcp.prompt', name: 'summarize' },
  { kind: 'llm.model', name: 'gpt-4o-mini' },
  { kind: 'llm.model', name: 'claude' },
]

const TIMES = ['2026-11-30T10:00:00Z', '2026-11-30T20:00:00Z']

if (requireOpa(t)) {
  const dir = join(EXAMPLES, 'opa')
  const opa = await startOpa(t, {
    'mesh.rego': readFileSync(join(dir, 'mesh.rego'), 'utf8'),
    'svidecar_lib.rego': readFileSync(join(dir, 'svidecar_lib.rego'), 'utf8'),
  })

  t.test('opa: mesh.rego decides like mesh.yaml', async (t) => {
    const builtin = loadPolicyFile(join(EXAMPLES, 'mesh.yaml')).engine
    const engine = createOpaEngine({ url: opa.url, package: 'svidecar.authz', timeoutMs: 5000 })
    t.teardown(() => engine.close())
    const seen = new Set<string>()
    for (const subject of SUBJECTS) {
      for (const resource of RESOURCES) {
        for (const time of TIMES) {
          const request: PolicyRequest = {
            subject: SpiffeId.parse(subject),
            resource,
            context: { time: new Date(time), direction: 'inbound' },
          }
          const d = await engine.decide(request)
          const b = builtin.decide(request) as Awaited<ReturnType<typeof builtin.decide>>
          const what = `${subject} ${JSON.stringify(resource)} at ${time}`
          t.notMatch(d.reason, /^opa: /, `${what}: OPA answered (${d.reason})`)
          t.same(
            { decision: d.decision, ruleId: d.ruleId, mode: d.mode, wouldDeny: d.wouldDeny },
            { decision: b.decision, ruleId: b.ruleId, mode: b.mode, wouldDeny: b.wouldDeny },
            what,
          )
          seen.add(`${b.decision} ${b.ruleId ?? 'default'} ${b.mode}`)
        }
      }
    }
    // The requests reach every rule, the audit rule and the default deny, so the comparison means something.
    for (const outcome of [
      'allow agents-use-mcp enforce',
      'allow agents-use-gpt-4o enforce',
      'allow partners-read-only enforce',
      'deny no-admin-tools enforce',
      'allow trial-no-delete audit',
      'deny default enforce',
    ]) {
      t.ok(seen.has(outcome), `covered: ${outcome}`)
    }
  })
}
