// The built-in engine's parts: the index agrees with the library's matchers; a big policy decides right;
// decisions are plain data; CEL behaviour the engine relies on, checked on @bufbuild/cel as installed.
import t from 'tap'
import { matchPattern, SpiffeId } from 'workload-api-client'
import { BuiltinEngine } from '../../src/policy/builtin/engine.ts'
import { pathSegments } from '../../src/policy/builtin/paths.ts'
import { compileSubject } from '../../src/policy/builtin/rules.ts'
import { SegmentTrie } from '../../src/policy/builtin/segment-trie.ts'
import type { PolicyRequest } from '../../src/policy/engine.ts'
import { parsePolicy } from '../../src/policy/file.ts'

t.test('the subject index matches exactly what the library matchPattern matches', async (t) => {
  const patterns = [
    'spiffe://td/a/*',
    'spiffe://td/a/**',
    'spiffe://td/**',
    'spiffe://td/*/b',
    'spiffe://td/**/b',
    'spiffe://td/a/**/c/*',
    'spiffe://td/a',
    'spiffe://td',
    'spiffe://other/a/*',
  ]
  const ids = [
    'spiffe://td',
    'spiffe://td/a',
    'spiffe://td/a/b',
    'spiffe://td/a/b/c',
    'spiffe://td/a/c/d',
    'spiffe://td/a/x/c/d',
    'spiffe://td/x/b',
    'spiffe://td/b',
    'spiffe://td/a-b',
    'spiffe://other/a/b',
  ]
  for (const p of patterns) {
    const subject = compileSubject({ pattern: p })
    const trie = new SegmentTrie<string>()
    trie.insert(subject.segments, p)
    for (const idText of ids) {
      const id = SpiffeId.parse(idText)
      const out: string[] = []
      if (id.trustDomain.name === subject.trustDomain) trie.match(id.segments, out)
      t.equal(out.length > 0, matchPattern(p)(id), `${p} vs ${idText}`)
    }
  }
})

t.test('paths: normal form or a reason', async (t) => {
  t.same(pathSegments('/a/b'), ['a', 'b'])
  t.same(pathSegments('/'), [''])
  t.same(pathSegments('/a/'), ['a', ''])
  t.same(pathSegments('/a%2Fb/c?x=1#f'), ['a%2Fb', 'c'], 'an encoded slash stays inside its segment')
  t.same(pathSegments('/%7e%41'), ['~A'], 'unreserved escapes are decoded')
  t.same(pathSegments('/%e2%82%ac'), ['%E2%82%AC'], 'other escapes are upper-cased, not decoded')
  t.type(pathSegments('/a/%2e%2e/b'), 'string', 'an encoded dot segment is refused')
  t.type(pathSegments('/a//b'), 'string')
  t.type(pathSegments('a/b'), 'string')
  t.type(pathSegments('/a/%zz'), 'string')
})

t.test('10,000 rules: each subject gets its own rule, deny-overrides across the index', async (t) => {
  const rules: string[] = []
  for (let i = 0; i < 10_000; i++) {
    const kind = i % 3
    const r =
      kind === 0
        ? `{ kind: http.route, methods: [GET], path: "/svc-${i}/**" }`
        : kind === 1
          ? `{ kind: mcp.tool, name: "tool-${i}-*" }`
          : `{ kind: llm.model, name: "model-${i}" }`
    rules.push(
      `  - { id: r${i}, effect: allow, subjects: ["spiffe://example.org/ns/n${i % 100}/sa/s${i}"], resources: [${r}] }`,
    )
  }
  rules.push(
    `  - { id: deny-debug, effect: deny, subjects: [{ trustDomain: example.org }], resources: [{ kind: http.route, path: "/**/debug" }] }`,
  )
  const { engine } = parsePolicy(`version: 1\nrules:\n${rules.join('\n')}\n`, 'big.yaml')
  const ask = (i: number, resource: PolicyRequest['resource']) =>
    engine.decide({
      subject: SpiffeId.parse(`spiffe://example.org/ns/n${i % 100}/sa/s${i}`),
      resource,
      context: { time: new Date() },
    })
  t.match(ask(3, { kind: 'http.route', method: 'GET', path: '/svc-3/x' }), {
    decision: 'allow',
    ruleId: 'r3',
  })
  t.match(ask(3, { kind: 'http.route', method: 'GET', path: '/svc-3/x/debug' }), {
    decision: 'deny',
    ruleId: 'deny-debug',
  })
  t.match(ask(4, { kind: 'http.route', method: 'GET', path: '/svc-3/x' }), {
    decision: 'deny',
    ruleId: undefined,
  })
  t.match(ask(9997, { kind: 'mcp.tool', name: 'tool-9997-run' }), { decision: 'allow', ruleId: 'r9997' })
  t.match(ask(9998, { kind: 'mcp.tool', name: 'tool-9997-run' }), { decision: 'deny' })
  t.match(ask(9998, { kind: 'llm.model', name: 'model-9998' }), { decision: 'allow', ruleId: 'r9998' })
})

t.test('reasons never carry a query string and stay short', async (t) => {
  const { engine } = parsePolicy(
    `version: 1\nrules:\n  - { id: r, effect: allow, subjects: ["spiffe://td/a"], resources: [{ kind: http.route, path: "/x" }] }\n`,
    'p.yaml',
  )
  const ask = (path: string) =>
    engine.decide({
      subject: SpiffeId.parse('spiffe://td/a'),
      resource: { kind: 'http.route', method: 'GET', path },
      context: { time: new Date() },
    })
  const allowed = ask('/x?api_key=sk-secret-123#frag')
  t.equal(allowed.decision, 'allow')
  t.notMatch(allowed.reason, /sk-secret|api_key|frag/)
  const denied = ask('/y?token=sk-secret-456')
  t.equal(denied.decision, 'deny')
  t.notMatch(denied.reason, /sk-secret|token/)
  const refused = ask('/../y?token=sk-secret-789')
  t.notMatch(refused.reason, /sk-secret/)
  t.ok(ask(`/${'a'.repeat(10_000)}`).reason.length < 400, 'a long path is clipped')
})

t.test('an engine with no rules denies everything', async (t) => {
  const d = BuiltinEngine.denyAll().decide({
    subject: SpiffeId.parse('spiffe://td/a'),
    resource: { kind: 'mcp.tool', name: 'x' },
    context: { time: new Date() },
  })
  t.match(d, { decision: 'deny', mode: 'enforce', engine: 'builtin' })
})

t.test('CEL semantics the conditions rely on (@bufbuild/cel as installed)', async (t) => {
  const policy = (when: string) =>
    parsePolicy(
      `version: 1\nrules:\n  - { id: r, effect: allow, subjects: ["spiffe://td/a"], resources: [{ kind: mcp.tool, name: x }], when: ${JSON.stringify(when)} }\n`,
      'p.yaml',
    ).engine
  const decide = (when: string, context: Partial<PolicyRequest['context']> = {}) =>
    policy(when).decide({
      subject: SpiffeId.parse('spiffe://td/a'),
      resource: { kind: 'mcp.tool', name: 'x' },
      context: { time: new Date('2026-11-29T23:30:00Z'), ...context },
    })
  // A time zone moves the hour and the day: 23:30 UTC on Sunday is 00:30 on Monday in Berlin.
  t.equal(
    decide('time.getHours("Europe/Berlin") == 0 && time.getDayOfWeek("Europe/Berlin") == 1').decision,
    'allow',
  )
  t.equal(decide('time.getHours() == 23').decision, 'allow', 'no zone means UTC')
  t.equal(
    decide('time.getHours("+05:30") == 5 && time.getMinutes("+05:30") == 0').decision,
    'allow',
    'a fixed offset',
  )
  t.equal(decide('time.getHours("-08:00") == 15 && time.getDayOfWeek("-08:00") == 0').decision, 'allow')
  t.equal(
    decide(
      'time.getFullYear() == 2026 && time.getMonth() == 10 && time.getDate() == 29 && time.getDayOfMonth() == 28',
    ).decision,
    'allow',
    'getMonth and getDayOfMonth are 0-based, getDate 1-based',
  )
  t.equal(decide('time.getDayOfYear() == 332').decision, 'allow', 'Nov 29 is day 332 counted from 0')
  t.equal(decide('time.getDayOfYear("Asia/Tokyo") == 333').decision, 'allow', 'already Nov 30 in Tokyo')
  t.equal(decide('time.getSeconds() == 0 && time.getMilliseconds() == 0').decision, 'allow')
  // 01:30 UTC on 2026-03-29 is 03:30 in Berlin: the hour after the spring-forward gap.
  t.equal(
    decide('time.getHours("Europe/Berlin") == 3', { time: new Date('2026-03-29T01:30:00Z') }).decision,
    'allow',
  )
  t.match(
    decide('time.getHours("Mars/Olympus") == 1'),
    { decision: 'deny', conditionError: { ruleId: 'r' } },
    'an unknown zone fails, never allows',
  )
  // && and || absorb an error when the other side decides (CEL's commutative logic).
  t.equal(decide('false && attributes.missing == 1').decision, 'deny')
  t.equal(decide('attributes.missing == 1 || true').decision, 'allow')
  t.notOk(decide('attributes.missing == 1 || true').conditionError)
  // Numbers from JSON attributes are doubles; CEL compares them with int literals.
  t.equal(decide('attributes.n > 3', { attributes: { n: 4 } }).decision, 'allow')
  // A non-bool result is an error, never truthy.
  t.match(decide('subject.id'), { decision: 'deny', conditionError: { ruleId: 'r' } })
  t.match(decide('subject.id.matches("(")'), { decision: 'deny', conditionError: { ruleId: 'r' } })
  // The strings extension is loaded.
  t.equal(decide('subject.path.lowerAscii() == "/a"').decision, 'allow')
})
