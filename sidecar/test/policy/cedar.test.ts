// The Cedar engine: loading (errors with file:line:col), the request as Cedar sees it, decisions and audit
// mode, and the translator from the built-in format checked against the built-in engine on generated patterns.
import { unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { SpiffeId } from 'workload-api-client'
import { type CedarEngineOptions, createCedarEngine } from '../../src/policy/cedar/engine.ts'
import { attributeFilter } from '../../src/policy/cedar/entities.ts'
import { loadCedarPolicy } from '../../src/policy/cedar/load.ts'
import { translateToCedar } from '../../src/policy/cedar/translate.ts'
import type { PolicyRequest, PolicyResource } from '../../src/policy/engine.ts'
import { loadPolicyFile, PolicyError, type PolicyIssue, parsePolicy } from '../../src/policy/file.ts'

/** One directory per test: t.testdir() empties it on every call. */
const dirs = new WeakMap<Test, string>()

function write(t: Test, name: string, text: string): string {
  let dir = dirs.get(t)
  if (dir === undefined) {
    dir = t.testdir()
    dirs.set(t, dir)
  }
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

function engine(t: Test, text: string, options: CedarEngineOptions = {}) {
  return createCedarEngine(write(t, 'policy.cedar', text), options)
}

function issuesOf(fn: () => unknown): readonly PolicyIssue[] {
  try {
    fn()
  } catch (err) {
    if (err instanceof PolicyError) return err.issues
    throw err
  }
  throw new Error('expected a PolicyError')
}

/** 1-based line and column of the first occurrence of `needle`. */
function at(text: string, needle: string): { line: number; column: number } {
  const before = text.slice(0, text.indexOf(needle)).split('\n')
  return { line: before.length, column: [...(before[before.length - 1] as string)].length + 1 }
}

const TOOL = (name: string): PolicyResource => ({ kind: 'mcp.tool', name })

function request(
  subject: string,
  resource: PolicyResource,
  extra: Partial<PolicyRequest> = {},
): PolicyRequest {
  return {
    subject: SpiffeId.parse(subject),
    resource,
    context: { time: new Date('2026-11-30T10:00:00Z') },
    ...extra,
  }
}

t.test('loading errors', async (t) => {
  t.test('a syntax error names file, line and column (counted in characters, not bytes)', async (t) => {
    const text =
      '// héllo wörld\npermit (principal, action, resource);\nforbid (principal, action, resource)\n  when { 1 + };\n'
    const file = write(t, 'bad.cedar', text)
    let err: unknown
    try {
      loadCedarPolicy(file)
    } catch (e) {
      err = e
    }
    t.ok(err instanceof PolicyError)
    t.equal((err as PolicyError).code, 'SVD_POLICY_INVALID')
    const issues = (err as PolicyError).issues
    t.equal(issues.length, 1)
    t.equal(issues[0]?.path, '(cedar)')
    t.same({ line: issues[0]?.line, column: issues[0]?.column }, at(text, '};'))
    t.match((err as Error).message, `${file}:4:`)
  })

  t.test('duplicate @id values are refused at the second one', async (t) => {
    const text =
      '@id("a")\npermit (principal, action, resource);\n\n@id("a")\nforbid (principal, action, resource);\n'
    const issues = issuesOf(() => loadCedarPolicy(write(t, 'p.cedar', text)))
    t.equal(issues.length, 1)
    t.equal(issues[0]?.path, 'policy a')
    t.equal(issues[0]?.line, 4)
    t.equal(issues[0]?.column, 1)
  })

  t.test('an unknown @mode is refused', async (t) => {
    const text = '@mode("sometimes")\nforbid (principal, action, resource);\n'
    const issues = issuesOf(() => loadCedarPolicy(write(t, 'p.cedar', text)))
    t.equal(issues[0]?.path, 'policy policy0')
    t.match(issues[0]?.message, /enforce.*audit/)
  })

  t.test('templates are refused (nothing would link them)', async (t) => {
    const text = 'permit (principal == ?principal, action, resource);\n'
    const issues = issuesOf(() => loadCedarPolicy(write(t, 'p.cedar', text)))
    t.match(issues[0]?.message, /templates are not supported/)
    t.equal(issues[0]?.line, 1)
  })

  const SCHEMA = `namespace Spiffe {
  entity Workload { trustDomain: String };
  entity Tool { name: String };
  action "mcp.tool" appliesTo { principal: Workload, resource: Tool };
}
`

  t.test('with a schema, an unknown entity type is an error at its place in the policy', async (t) => {
    const text =
      '@id("ok")\npermit (principal, action, resource is Spiffe::Tool);\n@id("typo")\npermit (principal is Spiffe::Workloda, action, resource);\n'
    const schema = write(t, 'spiffe.cedarschema', SCHEMA)
    const file = write(t, 'p.cedar', text)
    const issues = issuesOf(() => loadCedarPolicy(file, { schema }))
    const typo = issues.find((i) => /Workloda/.test(i.message))
    t.ok(typo, 'the unknown type is reported')
    t.equal(typo?.path, 'policy typo')
    t.same({ line: typo?.line, column: typo?.column }, at(text, 'Spiffe::Workloda'))
    t.ok(
      loadCedarPolicy(
        write(t, 'good.cedar', '@id("ok")\npermit (principal, action, resource is Spiffe::Tool);\n'),
        { schema },
      ),
    )
  })

  t.test('a schema with an error names the schema file, line and column', async (t) => {
    const schema = write(t, 'bad.cedarschema', 'entity Workload;\nentity Tool in [Nowhere];\n')
    const file = write(t, 'p.cedar', 'permit (principal, action, resource);\n')
    let err: unknown
    try {
      loadCedarPolicy(file, { schema })
    } catch (e) {
      err = e
    }
    t.ok(err instanceof PolicyError)
    const issues = (err as PolicyError).issues
    t.equal(issues[0]?.path, '(schema)')
    t.equal(issues[0]?.line, 2)
    t.equal(issues[0]?.column, 17)
    t.match((err as Error).message, schema)
  })

  t.test('a missing file and a file over the cap are SVD_POLICY_UNREADABLE', async (t) => {
    t.throws(() => loadCedarPolicy(`${write(t, 'x', '')}.missing`), { code: 'SVD_POLICY_UNREADABLE' })
    const big = write(t, 'big.cedar', `${'// padding\n'.repeat(100)}permit (principal, action, resource);\n`)
    t.throws(() => loadCedarPolicy(big, { maxBytes: 500 }), {
      code: 'SVD_POLICY_UNREADABLE',
      reason: 'TOO_LARGE',
    })
  })
})

t.test('the request as Cedar sees it', async (t) => {
  const e = engine(
    t,
    `@id("workload-attrs")
permit (principal, action == Spiffe::Action::"mcp.tool", resource is Spiffe::Tool)
when {
  principal.id == "spiffe://example.org/ns/prod/sa/agent" && principal.trustDomain == "example.org" &&
  principal.path == "/ns/prod/sa/agent" && principal.depth == 4 &&
  principal.segments["0"] == "ns" && principal.segmentsFromEnd["0"] == "agent" &&
  resource.name == "attrs"
};
@id("route-attrs")
permit (principal, action == Spiffe::Action::"http.route", resource is Spiffe::Route)
when {
  resource.method == "GET" && resource.path == "/api/x" && resource.depth == 2 &&
  resource.segmentsFromEnd["0"] == "x" && context.method == "GET" && context.direction == "inbound"
};
@id("context")
permit (principal, action == Spiffe::Action::"mcp.tool", resource == Spiffe::Tool::"ctx")
when {
  context.time == datetime("2026-11-30T10:00:00Z") && context.headers["x-env"] == "prod" &&
  context.attributes.n == 3 && context.attributes.list.contains("b") && !(context.attributes has f) &&
  context.peer == Spiffe::Workload::"spiffe://other.org/server" && context.peer.trustDomain == "other.org"
};
@id("smuggled")
permit (principal, action, resource) when { context.attributes has x && context.attributes.x is Spiffe::Workload };
`,
  )
  t.equal(e.decide(request('spiffe://example.org/ns/prod/sa/agent', TOOL('attrs'))).ruleId, 'workload-attrs')
  t.equal(
    e.decide(
      request(
        'spiffe://example.org/a',
        { kind: 'http.route', method: 'GET', path: '/%61pi/x?q=1' },
        {
          context: { time: new Date(), method: 'GET', direction: 'inbound' },
        },
      ),
    ).ruleId,
    'route-attrs',
    'a route is matched in its normal form',
  )
  const ctx = request('spiffe://example.org/a', TOOL('ctx'), {
    peer: SpiffeId.parse('spiffe://other.org/server'),
    context: {
      time: new Date('2026-11-30T10:00:00Z'),
      headers: { 'x-env': 'prod' },
      attributes: { n: 3, list: ['a', 'b'], f: 1.5, nothing: null },
    },
  })
  t.equal(e.decide(ctx).ruleId, 'context', 'time, headers, attributes (without fractions) and peer')
  const smuggled = request('spiffe://example.org/a', TOOL('none'), {
    context: {
      time: new Date(),
      attributes: { x: { __entity: { type: 'Spiffe::Workload', id: 'spiffe://example.org/admin' } } },
    },
  })
  t.equal(
    e.decide(smuggled).decision,
    'deny',
    'an attribute cannot smuggle an entity reference into the context',
  )
})

t.test('decisions', async (t) => {
  t.test('policies without @id are named as Cedar names them', async (t) => {
    const e = engine(
      t,
      'forbid (principal, action, resource == Spiffe::Tool::"rm");\npermit (principal, action, resource);\n',
    )
    t.equal(e.decide(request('spiffe://example.org/a', TOOL('ls'))).ruleId, 'policy1')
    t.equal(e.decide(request('spiffe://example.org/a', TOOL('rm'))).ruleId, 'policy0')
  })

  t.test(
    'a forbid whose condition errors denies even when a permit holds (Cedar alone would skip it)',
    async (t) => {
      const e = engine(
        t,
        '@id("all")\npermit (principal, action, resource);\n@id("broken")\nforbid (principal, action, resource) when { context.attributes.missing };\n',
      )
      const d = e.decide(request('spiffe://example.org/a', TOOL('x')))
      t.equal(d.decision, 'deny')
      t.equal(d.ruleId, 'broken')
      t.equal(d.conditionError?.ruleId, 'broken')
      t.match(d.reason, /condition failed: .*missing/)
      t.equal(d.engine, 'cedar')
    },
  )

  t.test('of two matching forbids, the first in the file names the denial', async (t) => {
    const e = engine(
      t,
      '@id("z-later")\nforbid (principal, action, resource);\n@id("a-first")\nforbid (principal, action, resource);\n',
    )
    t.equal(e.decide(request('spiffe://example.org/a', TOOL('x'))).ruleId, 'z-later')
  })

  t.test('@mode("audit") on a forbid reports the denial and lets the request through', async (t) => {
    const text =
      '@id("all")\npermit (principal, action, resource);\n@id("trial")\n@mode("audit")\nforbid (principal, action, resource == Spiffe::Tool::"shell");\n'
    const d = engine(t, text).decide(request('spiffe://example.org/a', TOOL('shell')))
    t.same(
      { decision: d.decision, ruleId: d.ruleId, mode: d.mode, wouldDeny: d.wouldDeny },
      { decision: 'allow', ruleId: 'trial', mode: 'audit', wouldDeny: true },
    )
    t.match(d.reason, /^audit: rule trial denies/)
  })

  t.test(
    'an audit engine audits forbids without @mode and the default deny, enforces @mode("enforce")',
    async (t) => {
      const text =
        '@id("all")\npermit (principal, action, resource == Spiffe::Tool::"ls");\n@id("soft")\nforbid (principal, action, resource == Spiffe::Tool::"ls");\n@id("hard")\n@mode("enforce")\nforbid (principal, action, resource == Spiffe::Tool::"rm");\n'
      const e = engine(t, text, { mode: 'audit' })
      t.match(e.decide(request('spiffe://example.org/a', TOOL('ls'))), {
        decision: 'allow',
        ruleId: 'soft',
        wouldDeny: true,
      })
      t.match(e.decide(request('spiffe://example.org/a', TOOL('cat'))), {
        decision: 'allow',
        mode: 'audit',
        wouldDeny: true,
      })
      t.match(e.decide(request('spiffe://example.org/a', TOOL('rm'))), {
        decision: 'deny',
        ruleId: 'hard',
        mode: 'enforce',
      })
    },
  )

  t.test('the policy is read once: deleting the file changes nothing', async (t) => {
    const file = write(t, 'p.cedar', '@id("all")\npermit (principal, action, resource);\n')
    const e = createCedarEngine(file)
    unlinkSync(file)
    t.equal(e.decide(request('spiffe://example.org/a', TOOL('x'))).ruleId, 'all')
  })

  t.test('an empty policy set denies', async (t) => {
    t.match(engine(t, '// nothing\n').decide(request('spiffe://example.org/a', TOOL('x'))), {
      decision: 'deny',
      mode: 'enforce',
    })
  })
})

t.test('the translator refuses what Cedar cannot say exactly', async (t) => {
  const cel = parsePolicy(
    'version: 1\nrules:\n  - id: c\n    effect: allow\n    subjects: [{ trustDomain: example.org }]\n    resources: [{ kind: mcp.tool, name: x }]\n    when: request.direction == "inbound"\n',
    'p.yaml',
  )
  t.throws(() => translateToCedar(cel.document), {
    code: 'SVD_POLICY_INVALID',
    reason: 'NOT_EXPRESSIBLE_IN_CEDAR',
  })
  const twoAny = parsePolicy(
    'version: 1\nrules:\n  - id: c\n    effect: allow\n    subjects: [{ trustDomain: example.org }]\n    resources: [{ kind: http.route, path: /a/**/b/** }]\n',
    'p.yaml',
  )
  t.throws(() => translateToCedar(twoAny.document), {
    code: 'SVD_POLICY_INVALID',
    reason: 'NOT_EXPRESSIBLE_IN_CEDAR',
  })
})

/** A small deterministic generator, so a failure is reproducible from the seed. */
function prng(seed: number): (n: number) => number {
  let s = seed >>> 0
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s % n
  }
}

t.test('translated patterns decide exactly as the built-in engine (generated cases)', async (t) => {
  const rnd = prng(20261130)
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)] as T
  const PATTERN_SEGS = ['a', 'b', 'ab', '*', 'a*', '*b', 'a*b', '**']
  const PATH_SEGS = ['a', 'b', 'ab', 'ba', 'aab', 'x']
  const SUBJECT_SEGS = ['a', 'b', '*', '**']
  const randomSegments = (from: readonly string[], max: number): string[] =>
    Array.from({ length: rnd(max) }, () => pick(from))
  /** Segments the pattern matches, built from it, now and then changed in one place. */
  const instantiate = (pattern: readonly string[]): string[] => {
    const out: string[] = []
    for (const seg of pattern) {
      if (seg === '**') out.push(...randomSegments(PATH_SEGS, 3))
      else if (seg === '') continue
      else out.push(seg.replaceAll('*', () => pick(['', 'x', 'ab', 'b'])) || 'x')
    }
    if (rnd(4) === 0 && out.length > 0) out[rnd(out.length)] = pick(PATH_SEGS)
    if (rnd(6) === 0) out.push(pick(PATH_SEGS))
    return out
  }
  let compared = 0
  let mismatches = 0
  let allowed = 0
  for (let n = 0; n < 60; n++) {
    const len = 1 + rnd(4)
    const segs: string[] = []
    let anys = 0
    for (let i = 0; i < len; i++) {
      let s = pick(PATTERN_SEGS)
      if (s === '**' && anys++ > 0) s = '*'
      segs.push(s)
    }
    if (rnd(5) === 0) segs.push('')
    const route = `/${segs.join('/')}`
    const subjectSegs: string[] = []
    let subjectAnys = 0
    for (let i = 0, m = rnd(3); i < m; i++) {
      let s = pick(SUBJECT_SEGS)
      if (s === '**' && subjectAnys++ > 0) s = '*'
      subjectSegs.push(s)
    }
    const subject = `spiffe://example.org${subjectSegs.map((s) => `/${s}`).join('')}`
    const doc = `version: 1\nrules:\n  - id: r\n    effect: allow\n    subjects: [{ pattern: "${subject}" }]\n    resources:\n      - { kind: http.route, methods: [GET], path: "${route}" }\n      - { kind: mcp.resource, uri: "db:/${route}" }\n      - { kind: mcp.tool, name: "${segs.join('')}" }\n`
    let builtin: ReturnType<typeof parsePolicy>
    try {
      builtin = parsePolicy(doc, 'generated.yaml')
    } catch {
      continue // a pattern the built-in format refuses (e.g. a SPIFFE pattern the library rejects)
    }
    const { text, mode } = translateToCedar(builtin.document)
    const cedar = engine(t, text, { mode })
    for (let k = 0; k < 12; k++) {
      // Half the requests are drawn from the pattern itself (so many match), the rest at random.
      const p = rnd(2) === 0 ? instantiate(segs) : randomSegments(PATH_SEGS, 5)
      if (rnd(5) === 0) p.push('')
      const path = `/${p.join('/')}`
      const whoSegs = rnd(2) === 0 ? instantiate(subjectSegs) : randomSegments(['a', 'b', 'ab'], 3)
      const who = `spiffe://${rnd(6) === 0 ? 'other.org' : 'example.org'}${whoSegs.map((x) => `/${x}`).join('')}`
      const resources: PolicyResource[] = [
        { kind: 'http.route', method: rnd(5) === 0 ? 'POST' : 'GET', path },
        { kind: 'mcp.resource', uri: `db:/${path}` },
        { kind: 'mcp.tool', name: p.join('') },
      ]
      for (const r of resources) {
        const req = request(who, r)
        const a = builtin.engine.decide(req)
        const b = cedar.decide(req)
        compared++
        if (a.decision === 'allow') allowed++
        if (a.decision !== b.decision || a.ruleId !== b.ruleId) {
          mismatches++
          t.fail(
            `${subject} ${route} vs ${who} ${JSON.stringify(r)}: builtin ${a.decision}, cedar ${b.decision}`,
          )
        }
      }
    }
  }
  t.equal(mismatches, 0, `no mismatch in ${compared} decisions`)
  t.ok(compared > 1000, `enough decisions compared (${compared})`)
  t.ok(allowed > compared / 10, `both outcomes are exercised (${allowed} allowed)`)
})

t.test('the example mesh.cedar decides like mesh.yaml, its built-in twin', async (t) => {
  const dir = new URL('../../../deploy/examples/policies/', import.meta.url).pathname
  const cedar = createCedarEngine(join(dir, 'mesh.cedar'))
  const builtin = loadPolicyFile(join(dir, 'mesh.yaml')).engine
  const agent = 'spiffe://example.org/ns/agents/sa/planner'
  const cases: [string, PolicyResource, string?][] = [
    [agent, { kind: 'http.route', method: 'POST', path: '/mcp' }],
    [agent, { kind: 'http.route', method: 'DELETE', path: '/mcp' }],
    [agent, { kind: 'http.route', method: 'POST', path: '/mcp/' }],
    [agent, { kind: 'http.route', method: 'PATCH', path: '/mcp' }],
    [agent, TOOL('search_web')],
    [agent, TOOL('admin_reset')],
    [agent, { kind: 'mcp.resource', uri: 'file:///docs/a/b.md' }],
    [agent, { kind: 'mcp.resource', uri: 'file:///docsx' }],
    [agent, { kind: 'mcp.prompt', name: 'summarize' }],
    [agent, { kind: 'llm.model', name: 'gpt-4o-mini' }],
    ['spiffe://example.org/ns/agents', { kind: 'llm.model', name: 'gpt-4o' }],
    ['spiffe://example.org/ns/agents-x/y', { kind: 'llm.model', name: 'gpt-4o' }],
    ['spiffe://example.org/ns/agents/sa/planner/x', TOOL('search_web')],
    ['spiffe://partner.example/billing', { kind: 'http.route', method: 'GET', path: '/v1/catalog/items' }],
    [
      'spiffe://partner.example/billing',
      { kind: 'http.route', method: 'GET', path: '/v1/catalog/items' },
      '2026-11-30T20:00:00Z',
    ],
    ['spiffe://partner.example/billing', { kind: 'http.route', method: 'GET', path: '/admin' }],
  ]
  for (const [subject, resource, time] of cases) {
    const req = request(subject, resource, { context: { time: new Date(time ?? '2026-11-30T10:00:00Z') } })
    const a = builtin.decide(req)
    const b = cedar.decide(req)
    t.same(
      { decision: b.decision, ruleId: b.ruleId, wouldDeny: b.wouldDeny },
      { decision: a.decision, ruleId: a.ruleId, wouldDeny: a.wouldDeny },
      `${subject} ${JSON.stringify(resource)}: ${a.reason}`,
    )
  }
})

t.test('requests carry only the attributes a policy set can read', async (t) => {
  const plain = attributeFilter([
    'permit (principal, action, resource) when { principal.trustDomain == "x" };',
  ])
  t.ok(plain.entity('trustDomain'))
  t.notOk(plain.entity('segments'), 'an attribute named nowhere is left out')
  t.notOk(plain.context('time'), 'so is a context key')
  const whole = attributeFilter(['permit (principal, action, resource) when { context == {} };'])
  t.ok(whole.context('time'), 'a context compared as a whole record keeps every key')
  const escaped = attributeFilter([
    'permit (principal, action, resource) when { principal["\\u{74}rustDomain"] == "x" };',
  ])
  t.ok(escaped.entity('trustDomain') && escaped.context('time'), 'names spelled with escapes keep everything')
  const e = engine(
    t,
    '@id("td")\npermit (principal, action, resource) when { principal["\\u{74}rustDomain"] == "example.org" };\n',
  )
  t.equal(e.decide(request('spiffe://example.org/a', TOOL('x'))).ruleId, 'td')
})

t.test(
  'slices: the same decisions whether wildcard policies are merged into a slice or asked apart',
  async (t) => {
    const core = `@id("own")
permit (principal == Spiffe::Workload::"spiffe://example.org/a", action == Spiffe::Action::"mcp.tool", resource);
@id("no-rm")
forbid (principal, action == Spiffe::Action::"mcp.tool", resource == Spiffe::Tool::"rm");
@id("broken")
forbid (principal == Spiffe::Workload::"spiffe://example.org/a", action, resource == Spiffe::Tool::"x") when { context.attributes.nope };
@id("all-prompts")
permit (principal, action == Spiffe::Action::"mcp.prompt", resource);
`
    // More wildcard-scope policies than a slice takes in: the (principal, action) slice is asked with the others.
    const many = Array.from(
      { length: 20 },
      (_, i) => `@id("z${i}")\npermit (principal, action, resource == Spiffe::Tool::"z${i}");`,
    ).join('\n')
    for (const [name, text] of [
      ['merged', core],
      ['apart', `${core}\n${many}\n`],
    ] as const) {
      const e = engine(t, text)
      const a = 'spiffe://example.org/a'
      t.match(e.decide(request(a, TOOL('ls'))), { decision: 'allow', ruleId: 'own' }, `${name}: own slice`)
      t.match(
        e.decide(request(a, TOOL('rm'))),
        { decision: 'deny', ruleId: 'no-rm' },
        `${name}: wildcard forbid`,
      )
      t.match(
        e.decide(request(a, TOOL('x'))),
        { decision: 'deny', ruleId: 'broken', conditionError: { ruleId: 'broken' } },
        `${name}: a failing forbid of the principal's any-action slice`,
      )
      t.match(
        e.decide(request(a, { kind: 'mcp.prompt', name: 'p' })),
        { decision: 'allow', ruleId: 'all-prompts' },
        `${name}: another action`,
      )
      t.match(
        e.decide(request('spiffe://example.org/b', TOOL('ls'))),
        { decision: 'deny' },
        `${name}: other principal`,
      )
    }
  },
)

t.test('input cedar-wasm refuses (a lone surrogate) is a denial, not an exception', async (t) => {
  const e = engine(t, '@id("all")\npermit (principal, action, resource) when { context.attributes has a };\n')
  const d = e.decide(
    request('spiffe://example.org/a', TOOL('x'), {
      context: { time: new Date(), attributes: { a: '\uD800' } },
    }),
  )
  t.equal(d.decision, 'deny')
  t.equal(d.mode, 'enforce')
  t.match(d.reason, /^cedar could not evaluate the request/)
})
