// The `mcp.client` resource kind (a request an MCP server makes of the agent, named by the capability it uses):
// the built-in engine, its Cedar translation and the OPA input all see it the same way.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { createCedarEngine } from '../../src/policy/cedar/engine.ts'
import { translateToCedar } from '../../src/policy/cedar/translate.ts'
import type { PolicyRequest } from '../../src/policy/engine.ts'
import { parsePolicy } from '../../src/policy/file.ts'
import { opaInput } from '../../src/policy/opa/input.ts'

const POLICY = `version: 1
rules:
  - id: sampled
    effect: allow
    subjects: ["spiffe://example.org/agent"]
    resources: [{ kind: mcp.client, name: sampling }]
  - id: no-elicit
    effect: deny
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: mcp.client, name: "elic*" }]
  - id: tools-only
    effect: allow
    subjects: ["spiffe://example.org/other"]
    resources: [{ kind: mcp.tool, name: sampling }]
`

const request = (who: string, name: string): PolicyRequest => ({
  subject: SpiffeId.parse(who),
  resource: { kind: 'mcp.client', name },
  context: { time: new Date('2026-01-01T00:00:00Z') },
})

t.test('built-in and Cedar decide mcp.client alike', async (t) => {
  const builtin = parsePolicy(POLICY, 'agent.yaml')
  const { text, mode } = translateToCedar(builtin.document)
  const file = join(t.testdir(), 'agent.cedar')
  writeFileSync(file, text)
  const cedar = createCedarEngine(file, { mode })
  const cases: Array<[string, string, 'allow' | 'deny', string | undefined]> = [
    ['spiffe://example.org/agent', 'sampling', 'allow', 'sampled'],
    ['spiffe://example.org/agent', 'roots', 'deny', undefined],
    ['spiffe://example.org/agent', 'elicitation', 'deny', 'no-elicit'],
    // A tool named like a capability is another kind: it grants nothing here.
    ['spiffe://example.org/other', 'sampling', 'deny', undefined],
  ]
  for (const [who, name, decision, rule] of cases) {
    const a = builtin.engine.decide(request(who, name))
    const b = await cedar.decide(request(who, name))
    t.equal(a.decision, decision, `built-in: ${who} ${name}`)
    t.equal(b.decision, decision, `cedar: ${who} ${name}`)
    t.equal(a.ruleId, rule)
    if (rule !== undefined) t.equal(b.ruleId, rule)
  }
})

t.test('an mcp.client rule must name its capability', async (t) => {
  t.throws(
    () =>
      parsePolicy(
        'version: 1\nrules:\n  - id: r\n    effect: allow\n    subjects: [{ trustDomain: example.org }]\n    resources: [{ kind: mcp.client }]\n',
        'bad.yaml',
      ),
    { code: 'SVD_POLICY_INVALID' },
  )
})

t.test('OPA sees the kind as the action and the capability as the name', async (t) => {
  const input = opaInput(request('spiffe://example.org/agent', 'sampling'))
  t.not(typeof input, 'string')
  if (typeof input === 'string') return
  t.equal(input.action, 'mcp.client')
  t.same(input.resource, { kind: 'mcp.client', name: 'sampling' })
})
