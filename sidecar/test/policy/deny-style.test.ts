// How an MCP denial is answered (hide, explain, forbid) travels with the decision from every engine: the
// built-in file's rule and policy `denyStyle`, Cedar's `@denyStyle` annotation, OPA's `deny_style` field.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { createCedarEngine } from '../../src/policy/cedar/engine.ts'
import type { PolicyDecision, PolicyRequest } from '../../src/policy/engine.ts'
import { PolicyError, parsePolicy } from '../../src/policy/file.ts'
import { decisionFromResult } from '../../src/policy/opa/result.ts'

const AGENT = 'spiffe://example.org/agent'
const tool = (name: string): PolicyRequest => ({
  subject: SpiffeId.parse(AGENT),
  resource: { kind: 'mcp.tool', name },
  context: { time: new Date(0) },
})

t.test('built-in: a deny rule names its style; the policy names the default deny style', async (t) => {
  const { engine } = parsePolicy(
    `version: 1
denyStyle: forbid
rules:
  - { id: ok, effect: allow, subjects: ["${AGENT}"], resources: [{ kind: mcp.tool, name: "*" }] }
  - { id: no-rm, effect: deny, denyStyle: explain, subjects: ["${AGENT}"], resources: [{ kind: mcp.tool, name: rm }] }
  - { id: no-sh, effect: deny, subjects: ["${AGENT}"], resources: [{ kind: mcp.tool, name: sh }] }
`,
    'p.yaml',
  )
  const d = (name: string) => engine.decide(tool(name)) as PolicyDecision
  t.match(d('rm'), { decision: 'deny', ruleId: 'no-rm', denyStyle: 'explain' })
  t.match(d('sh'), { decision: 'deny', ruleId: 'no-sh', denyStyle: 'forbid' }, "the policy's style")
  t.equal(d('ls').denyStyle, undefined, 'an allow has none')
  const { engine: plain } = parsePolicy('version: 1\nrules: []\n', 'p.yaml')
  t.equal((plain.decide(tool('x')) as PolicyDecision).denyStyle, undefined, 'none named: the lens default')
  try {
    parsePolicy('version: 1\ndenyStyle: silent\nrules: []\n', 'p.yaml')
    t.fail('an unknown style loads')
  } catch (err) {
    t.type(err, PolicyError)
    t.match((err as PolicyError).issues[0]?.path, /denyStyle/)
  }
})

t.test('Cedar: @denyStyle on a forbid policy', async (t) => {
  const file = join(t.testdir(), 'p.cedar')
  writeFileSync(
    file,
    `@id("all")
permit (principal, action, resource);
@id("no-rm")
@denyStyle("explain")
forbid (principal, action, resource == Spiffe::Tool::"rm");
`,
  )
  const engine = createCedarEngine(file)
  t.match(engine.decide(tool('rm')), { decision: 'deny', ruleId: 'no-rm', denyStyle: 'explain' })
  writeFileSync(file, '@denyStyle("quiet")\nforbid (principal, action, resource);\n')
  t.throws(() => createCedarEngine(file), /denyStyle/)
})

t.test('OPA: deny_style in the decision document', async (t) => {
  t.match(decisionFromResult({ result: { allow: false, rule_id: 'r', deny_style: 'hide' } }, tool('x')), {
    decision: 'deny',
    denyStyle: 'hide',
  })
  t.type(
    decisionFromResult({ result: { allow: false, deny_style: 'loud' } }, tool('x')),
    'string',
    'an unknown style is a malformed answer (denies)',
  )
})
