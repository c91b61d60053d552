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
      'type(time) == google.protobuf.Timestamp',
      'type(duration("1h")) == google.protobuf.Duration',
      'type(time - time) == google.protobuf.Duration',
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

t.test('operators, precedence and the numeric types', async (t) => {
  holds(t, [
    '2 + 3 * 4 == 14',
    '!false && true',
    'true || false && false',
    'true ? true : false',
    '7 / 2 == 3 && -7 / 2 == -3 && -7 % 2 == -1',
    '1 == 1.0 && 1u == 1 && 1 < 2.5 && 1u < 2 && 1.5 > 1u',
    '9223372036854775807 < 18446744073709551615u',
    '1.0 / 0.0 > 0.0',
    'double("NaN") != double("NaN")',
    '1 != "1"',
    '"a" < "b" && "a" + "b" == "ab"',
    '[1, 2] + [3] == [1, 2, 3]',
  ])
})

t.test('in, has() and the macros', async (t) => {
  holds(t, [
    '"a" in ["a", "b"] && !("c" in ["a", "b"])',
    '1 in [1.0, 2]',
    '"x-env" in request.headers && !("x-other" in request.headers)',
    'has(request.headers.foo) == false',
    '!has(peer.id)',
    'has(subject.id)',
    '[1, 2, 3].all(x, x > 0)',
    '[1, 2, 3].exists(x, x > 2)',
    '[1, 2, 3].exists_one(x, x > 2) && ![1, 2, 3].exists_one(x, x > 1)',
    '[1, 2, 3].map(x, x * 2) == [2, 4, 6]',
    '[1, 2, 3].filter(x, x > 1) == [2, 3]',
    '[1, 2, 3].map(x, x > 1, x * 10) == [20, 30]',
    'subject.segments.exists(s, s == "prod")',
    'request.headers.all(k, k.startsWith("x-"))',
    '{"a": 1}.exists(k, k == "a")',
  ])
})

t.test('string functions: RE2 matches (unanchored), code-point size', async (t) => {
  holds(t, [
    'subject.id.startsWith("spiffe://td/") && subject.id.endsWith("/agent")',
    'subject.path.contains("/prod/")',
    '"abc".matches("b") && "abc".matches("^a.c$") && !"abc".matches("^b")',
    'subject.id.matches("^spiffe://td/ns/[a-z]+/sa/agent$")',
    'size("héllo") == 5 && "héllo".size() == 5 && size(b"h\\xc3\\xa9") == 3',
    'size(subject.segments) == 4 && size(request.headers) == 1',
  ])
})

t.test(
  'errors deny, name the rule and say why; && and || absorb them only when the other side decides',
  async (t) => {
    fails(t, [
      ['1 / 0 == 1', /divide by zero/],
      ['1 % 0 == 1', /modulus by zero/],
      ['9223372036854775807 + 1 > 0', /overflow/],
      ['-9223372036854775808 - 1 < 0', /overflow/],
      ['9223372036854775807 * 2 > 0', /overflow/],
      ['-9223372036854775808 / -1 > 0', /overflow/],
      ['18446744073709551615u + 1u > 0u', /overflow/],
      ['0u - 1u > 0u', /overflow/],
      ['int("9223372036854775808") > 0', /overflow/],
      ['uint(-1) > 0u', /overflow/],
      ['1 + 1u == 2', /overload/],
      ['1 + 2.0 == 3.0', /overload/],
      ['"abc".matches("(?=a)")', /regexp/],
      ['"abc".matches("[")', /regexp/],
      ['request.headers["x-missing"] == "x"', /x-missing/],
      ['peer.id == "spiffe://td/x"', /id/],
      ['subject.segments[9] == "x"', /out of bounds|index/],
      ['[1, 0].all(x, 1 / x > 0)', /divide by zero/],
      ['[1, 2].exists_one(x, x / 0 == 1)', /divide by zero/],
      ['1 / 0 == 1 || false', /divide by zero/],
      ['true && 1 / 0 == 1', /divide by zero/],
      ['subject.id', /not a bool/],
    ])
    holds(t, [
      'true || 1 / 0 == 1',
      '1 / 0 == 1 || true',
      '!(false && 1 / 0 == 1)',
      '!(1 / 0 == 1 && false)',
      'peer.id == "x" || true',
      '[0, 1].exists(x, 1 / x == 1)',
      '![1, 0].all(x, 1 / x > 1)',
    ])
  },
)

t.test('an expression too deep to check is a load error naming the field, never a RangeError', async (t) => {
  for (const when of [
    `${Array(20_000).fill('1').join(' + ')} > 0`,
    `${'('.repeat(20_000)}true${')'.repeat(20_000)}`,
    `${'!'.repeat(50_000)}true`,
  ]) {
    t.throws(
      () => parsePolicy(rule(when), 'p.yaml'),
      { code: 'SVD_POLICY_INVALID', issues: [{ path: 'rules[0].when' }] },
      when.slice(0, 12),
    )
  }
})

t.test(
  'timestamp(int) reads Unix seconds, as int(timestamp) gives them (cel-go); out of range is an error',
  async (t) => {
    const time = new Date('2026-01-01T10:00:00Z')
    holds(
      t,
      [
        'timestamp(1767261600) == time',
        'timestamp(int(time)) == time',
        'timestamp(0) == timestamp("1970-01-01T00:00:00Z")',
      ],
      {
        time,
      },
    )
    fails(t, [
      ['timestamp(253402300800) > time', /range/],
      ['timestamp(-62135596801) < time', /range/],
    ])
  },
)
