// CEL conditions against the CEL language definition (github.com/google/cel-spec, doc/langdef.md), through the
// built-in engine as a policy uses them: what evaluates to true allows, false and every error deny, and an error
// is named in the decision (and so the audit line), never thrown.
import t, { type Test } from 'tap'
import { SpiffeId } from 'workload-api-client'
import type { PolicyRequest } from '../../src/policy/engine.ts'
import { parsePolicy } from '../../src/policy/file.ts'

const rule = (when: string) =>
  `version: 1\nrules:\n  - { id: r, effect: allow, subjects: ["spiffe://td/ns/prod/sa/agent"], resources: [{ kind: mcp.tool, name: x }], when: ${JSON.stringify(when)} }\n`

function decide(when: string, context: Partial<PolicyRequest['context']> = {}) {
  return parsePolicy(rule(when), 'p.yaml').engine.decide({
    subject: SpiffeId.parse('spiffe://td/ns/prod/sa/agent'),
    resource: { kind: 'mcp.tool', name: 'x' },
    context: { time: new Date('2026-01-01T10:00:00Z'), headers: { 'x-env': 'prod' }, ...context },
  })
}

function holds(t: Test, exprs: readonly string[], context?: Partial<PolicyRequest['context']>) {
  for (const e of exprs) t.match(decide(e, context), { decision: 'allow', ruleId: 'r' }, e)
}

function fails(t: Test, exprs: readonly [string, RegExp][]) {
  for (const [e, why] of exprs) {
    const d = decide(e)
    t.match(d, { decision: 'deny', conditionError: { ruleId: 'r', message: why } }, e)
    t.match(d.reason, why, `${e}: the reason says why`)
  }
}

t.test('type denotations (int, uint, double, bool, string, bytes, list, map, null_type, type)', async (t) => {
  holds(
    t,
    [
      'type(1) == int',
      'type(1u) == uint',
      'type(1.0) == double',
      'type(true) == bool',
      'type("a") == string',
      'type(b"a") == bytes',
      'type(subject.segments) == list',
      'type(request.headers) == map',
      'type(null) == null_type',
      'type(int) == type',
      'type(attributes.n) == double',
      'type(subject.id) != int',
    ],
    { attributes: { n: 1 } },
  )
})

t.test(
  'names an object inherits (constructor, toString, __proto__) are unknown variables and fields',
  async (t) => {
    for (const [when, what] of [
      ['constructor == constructor', /unknown variable "constructor"/],
      ['toString == toString', /unknown variable "toString"/],
      ['__proto__ == __proto__', /unknown variable "__proto__"/],
      ['subject.constructor == "x"', /unknown field "constructor"/],
      ['resource.hasOwnProperty == "x"', /unknown field "hasOwnProperty"/],
    ] as const) {
      t.throws(() => parsePolicy(rule(when), 'p.yaml'), { code: 'SVD_POLICY_INVALID', message: what }, when)
    }
  },
)
