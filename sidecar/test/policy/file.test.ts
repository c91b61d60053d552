// Loading a policy file: every problem with file:line:col and field, all at once; size cap; unreadable files.
import { truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { isSvidecarError } from '../../src/errors/index.ts'
import { loadPolicyFile, PolicyError, type PolicyIssue, parsePolicy } from '../../src/policy/file.ts'

function issuesOf(text: string): readonly PolicyIssue[] {
  try {
    parsePolicy(text, 'p.yaml')
  } catch (err) {
    if (err instanceof PolicyError) {
      t.equal(err.code, 'SVD_POLICY_INVALID')
      return err.issues
    }
    throw err
  }
  throw new Error('expected a PolicyError')
}

const RULE = `  - id: r1
    effect: allow
    subjects: [spiffe://example.org/a]
    resources: [{ kind: mcp.tool, name: x }]
`

t.test('a valid file loads, YAML or JSON', async (t) => {
  const p = parsePolicy(`version: 1\nrules:\n${RULE}`, 'p.yaml')
  t.equal(p.engine.rules.length, 1)
  t.equal(p.engine.mode, 'enforce')
  const j = parsePolicy(
    JSON.stringify({
      version: 1,
      mode: 'audit',
      rules: [
        {
          id: 'r',
          effect: 'deny',
          subjects: ['spiffe://td/x'],
          resources: [{ kind: 'llm.model', name: '*' }],
        },
      ],
    }),
    'p.json',
  )
  t.equal(j.engine.mode, 'audit')
})

t.test('YAML syntax errors name line and column', async (t) => {
  const issues = issuesOf('version: 1\nrules:\n  - id: a\n   effect: allow\n')
  t.equal(issues[0]?.path, '(yaml)')
  t.equal(issues[0]?.line, 4)
  t.ok((issues[0]?.column ?? 0) > 0)
})

t.test('duplicate YAML keys are errors, not last-one-wins', async (t) => {
  const issues = issuesOf(`version: 1\nversion: 1\nrules: []\n`)
  t.equal(issues[0]?.path, '(yaml)')
  t.equal(issues[0]?.line, 2)
})

t.test('unknown fields are named with their line and column', async (t) => {
  const issues = issuesOf(`version: 1\nrules:\n${RULE}    efect: deny\n`)
  t.same(
    issues.map((i) => [i.path, i.line, i.column]),
    [['rules[0].efect', 7, 5]],
  )
  t.match(issues[0]?.message, /unknown field/)
})

t.test('missing and mistyped fields', async (t) => {
  const issues = issuesOf(
    `mode: strict\nrules:\n  - id: r\n    effect: allow\n    subjects: []\n    resources: [{ kind: mcp.tool }]\n`,
  )
  const byPath = new Map(issues.map((i) => [i.path, i]))
  t.ok(byPath.has('version'), 'version is required')
  t.equal(byPath.get('mode')?.line, 1)
  t.equal(byPath.get('rules[0].subjects')?.line, 5)
  t.match(byPath.get('rules[0].subjects')?.message, /at least 1/)
  t.equal(byPath.get('rules[0].resources[0].name')?.message, 'is required')
})

t.test('bad SPIFFE IDs, patterns and trust domains', async (t) => {
  const issues = issuesOf(`version: 1
rules:
  - id: r
    effect: allow
    subjects:
      - spiffe://Example.org/a
      - { pattern: "spiffe://example.org/a*" }
      - { trustDomain: "bad domain" }
      - { id: "spiffe://example.org/x/../y" }
      - spiffe://example.org/**/**
    resources: [{ kind: mcp.tool, name: x }]
`)
  t.same(
    issues.map((i) => [i.path, i.line]),
    [
      ['rules[0].subjects[0]', 6],
      ['rules[0].subjects[1].pattern', 7],
      ['rules[0].subjects[2].trustDomain', 8],
      ['rules[0].subjects[3].id', 9],
      ['rules[0].subjects[4]', 10],
    ],
  )
})

t.test('bad route and URI patterns, unknown kinds', async (t) => {
  const issues = issuesOf(`version: 1
rules:
  - id: r
    effect: allow
    subjects: [spiffe://example.org/a]
    resources:
      - { kind: http.route, path: "v1/x" }
      - { kind: http.route, path: "/v1//x" }
      - { kind: http.route, path: "/v1/a**" }
      - { kind: http.route, methods: ["GET /x"], path: "/v1" }
      - { kind: mcp.resource, uri: "no-scheme/x" }
      - { kind: mcp.widget, name: x }
      - { kind: http.route, methods: [POST, get], path: "/v1" }
`)
  t.same(
    issues.map((i) => [i.path, i.line]),
    [
      ['rules[0].resources[0].path', 7],
      ['rules[0].resources[1].path', 8],
      ['rules[0].resources[2].path', 9],
      ['rules[0].resources[3].methods[0]', 10],
      ['rules[0].resources[4].uri', 11],
      ['rules[0].resources[5].kind', 12],
      ['rules[0].resources[6].methods[1]', 13],
    ],
  )
  t.match(issues[6]?.message, /case-sensitive: "get" never matches; write "GET"/)
})

t.test(
  'CEL: syntax errors, unknown variables, fields and functions are load errors with a position',
  async (t) => {
    const issues = issuesOf(`version: 1
rules:
  - id: a
    effect: allow
    subjects: [spiffe://example.org/a]
    resources: [{ kind: mcp.tool, name: x }]
    when: request.method ==
  - id: b
    effect: allow
    subjects: [spiffe://example.org/a]
    resources: [{ kind: mcp.tool, name: x }]
    when: reqest.method == "GET"
  - id: c
    effect: allow
    subjects: [spiffe://example.org/a]
    resources: [{ kind: mcp.tool, name: x }]
    when: 'subject.trust_domain == "x"'
  - id: d
    effect: allow
    subjects: [spiffe://example.org/a]
    resources: [{ kind: mcp.tool, name: x }]
    when: |
      exfiltrate(request.path)
`)
    t.same(
      issues.map((i) => [i.path, i.line, i.column]),
      [
        ['rules[0].when', 7, 26],
        ['rules[1].when', 12, 11],
        ['rules[2].when', 17, 19],
        ['rules[3].when', 22, 5],
      ],
    )
    t.match(issues[0]?.message, /does not compile/)
    t.match(issues[1]?.message, /unknown variable "reqest"/)
    t.match(issues[2]?.message, /unknown field "trust_domain"/)
    t.match(issues[3]?.message, /unknown function "exfiltrate"/)
  },
)

t.test('comprehension variables are in scope only inside their macro', async (t) => {
  parsePolicy(
    `version: 1\nrules:\n${RULE}    when: 'subject.segments.exists(s, s == "a") && request.headers.all(k, k != "")'\n`,
    'ok.yaml',
  )
  const issues = issuesOf(
    `version: 1\nrules:\n${RULE}    when: 'subject.segments.exists(s, s == "a") && s == "a"'\n`,
  )
  t.match(issues[0]?.message, /unknown variable "s"/)
})

t.test('duplicate rule ids point at the second one', async (t) => {
  const issues = issuesOf(`version: 1\nrules:\n${RULE}${RULE}`)
  t.same(
    issues.map((i) => [i.path, i.line, i.column]),
    [['rules[1].id', 7, 5]],
  )
  t.match(issues[0]?.message, /duplicate rule id "r1".*rules\[0\]/)
})

t.test('every problem of a file is reported in one run, in file order', async (t) => {
  const issues = issuesOf(`version: 2
rules:
  - id: r1
    effect: permit
    subjects: [spiffe://example.org/a*]
    resources: [{ kind: mcp.tool, name: x }]
    when: nope == 1
${RULE}`)
  t.same(
    issues.map((i) => i.path),
    ['version', 'rules[0].effect', 'rules[0].subjects[0]', 'rules[0].when', 'rules[1].id'],
  )
  const lines = issues.map((i) => i.line ?? 0)
  t.same(
    lines,
    [...lines].sort((a, b) => a - b),
  )
})

t.test('the message names file:line:col and field', async (t) => {
  try {
    parsePolicy(`version: 1\nrules:\n${RULE}    efect: deny\n`, 'deploy/p.yaml')
    t.fail('expected an error')
  } catch (err) {
    t.match((err as Error).message, /deploy\/p\.yaml:7:5: rules\[0\]\.efect: unknown field/)
  }
})

t.test('a file over the size cap is refused before it is read', async (t) => {
  const dir = t.testdir()
  const big = join(dir, 'big.yaml')
  writeFileSync(big, '')
  truncateSync(big, 100 * 1024 * 1024) // sparse: 100 MB of nothing, written in no time
  try {
    loadPolicyFile(big)
    t.fail('expected an error')
  } catch (err) {
    t.ok(isSvidecarError(err, 'SVD_POLICY_UNREADABLE'))
    t.equal((err as { reason?: string }).reason, 'TOO_LARGE')
    t.match((err as Error).message, /104857600 bytes, over the \d+-byte limit/)
  }
  const small = join(dir, 'small.yaml')
  writeFileSync(small, `version: 1\nrules:\n${RULE}`)
  t.throws(() => loadPolicyFile(small, { maxBytes: 20 }), {
    code: 'SVD_POLICY_UNREADABLE',
    reason: 'TOO_LARGE',
  })
  t.equal(loadPolicyFile(small).engine.rules.length, 1)
})

t.test('a missing file is SVD_POLICY_UNREADABLE', async (t) => {
  t.throws(() => loadPolicyFile(join(t.testdir(), 'nope.yaml')), { code: 'SVD_POLICY_UNREADABLE' })
})

t.test('an empty file is invalid (a policy must say what it allows)', async (t) => {
  const issues = issuesOf('')
  t.match(issues[0]?.message, /expected a mapping/)
})
