// `svidecar policy check` and `svidecar policy explain`, run as the real CLI.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { svidecar } from '../helpers/cli.ts'

const EXAMPLE = fileURLToPath(new URL('../../../deploy/examples/policies/mesh.yaml', import.meta.url))

const AGENT = 'spiffe://example.org/ns/agents/sa/planner'

t.test('policy check: a valid file', async (t) => {
  const r = await svidecar('policy', 'check', EXAMPLE)
  t.equal(r.code, 0)
  t.match(r.stdout, /mesh\.yaml: ok \(5 rules, mode enforce\)/)
})

t.test('policy check: every problem as file:line:col: field, exit 1', async (t) => {
  const file = join(t.testdir(), 'bad.yaml')
  writeFileSync(
    file,
    `version: 1
rules:
  - id: r
    effect: allow
    subjects: [spiffe://example.org/a*]
    resources: [{ kind: mcp.tool, name: x }]
    when: reqest.method == "GET"
  - id: r
    efect: deny
`,
  )
  const r = await svidecar('policy', 'check', file)
  t.equal(r.code, 1)
  const lines = r.stderr.trim().split('\n')
  t.same(
    lines.slice(0, -1).map((l) => {
      t.ok(l.startsWith(`${file}:`), 'each line starts with the file')
      return /^[^:]+:(\d+:\d+): (\S+):/
        .exec(l.slice(file.length - 1))
        ?.slice(1)
        .join(' ')
    }),
    [
      '5:16 rules[0].subjects[0]',
      '7:11 rules[0].when',
      '8:5 rules[1].effect',
      '8:5 rules[1].subjects',
      '8:5 rules[1].resources',
      '8:5 rules[1].id',
      '9:5 rules[1].efect',
    ],
  )
  t.match(lines.at(-1), /^SVD_POLICY_INVALID: 7 problems$/)
})

t.test('policy check: unreadable and usage errors', async (t) => {
  const missing = await svidecar('policy', 'check', join(t.testdir(), 'nope.yaml'))
  t.equal(missing.code, 1)
  t.match(missing.stderr, /SVD_POLICY_UNREADABLE: cannot read .*nope\.yaml: ENOENT/)
  t.equal((await svidecar('policy', 'check')).code, 2)
  t.equal((await svidecar('policy', 'frobnicate')).code, 2)
  const help = await svidecar('policy', '--help')
  t.equal(help.code, 0)
  t.match(help.stdout, /svidecar policy explain --policy FILE --subject ID/)
  t.match((await svidecar('--help')).stdout, /policy\s+check a policy file/)
})

t.test('policy explain: denied by a rule, with near misses, exit 1', async (t) => {
  const r = await svidecar(
    'policy',
    'explain',
    '--policy',
    EXAMPLE,
    '--subject',
    AGENT,
    '--tool',
    'admin_reset',
  )
  t.equal(r.code, 1)
  t.match(r.stdout, /decision: DENY by rule no-admin-tools/)
  t.match(r.stdout, /reason: +rule no-admin-tools denies mcp\.tool admin_reset/)
  t.match(
    r.stdout,
    /near misses:\n {2}agents-use-mcp \(allow, enforce\)\n {4}has +subject: pattern spiffe:\/\/example\.org\/ns\/agents\/sa\/\*\n {4}lacks +resource: mcp\.tool admin_reset is not mcp\.tool search_\*/,
  )
})

t.test('policy explain: allowed, exit 0; every resource flag', async (t) => {
  const cases: [string[], string][] = [
    [['--route', 'POST', '/mcp'], 'agents-use-mcp'],
    [['--tool', 'search_docs'], 'agents-use-mcp'],
    [['--resource', 'file:///docs/a/b.md'], 'agents-use-mcp'],
    [['--prompt', 'summarize'], 'agents-use-mcp'],
    [['--model', 'gpt-4o-mini'], 'agents-use-gpt-4o'],
  ]
  for (const [flags, rule] of cases) {
    const r = await svidecar('policy', 'explain', '--policy', EXAMPLE, '--subject', AGENT, ...flags)
    t.equal(r.code, 0, flags.join(' '))
    t.match(r.stdout, new RegExp(`decision: ALLOW by rule ${rule}`), flags.join(' '))
  }
})

t.test(
  'policy explain: the context feeds conditions; a condition that is false is what the near miss lacks',
  async (t) => {
    const args = ['policy', 'explain', '--policy', EXAMPLE, '--subject', 'spiffe://partner.example/billing']
    const day = await svidecar(
      ...args,
      '--route',
      'GET',
      '/v1/catalog/x',
      '--context',
      '{"time":"2026-11-30T09:00:00Z"}',
    )
    t.equal(day.code, 0)
    t.match(day.stdout, /ALLOW by rule partners-read-only/)
    const night = await svidecar(
      ...args,
      '--route',
      'GET',
      '/v1/catalog/x',
      '--context',
      '{"time":"2026-11-30T22:00:00Z"}',
    )
    t.equal(night.code, 1)
    t.match(night.stdout, /default deny/)
    t.match(night.stdout, /partners-read-only \(allow, enforce\)[\s\S]*lacks +condition: false/)
  },
)

t.test('policy explain: audit mode shows what would have been denied', async (t) => {
  const r = await svidecar(
    'policy',
    'explain',
    '--policy',
    EXAMPLE,
    '--subject',
    AGENT,
    '--route',
    'DELETE',
    '/mcp',
    '--json',
  )
  t.equal(r.code, 0)
  const x = JSON.parse(r.stdout)
  t.match(x.decision, {
    decision: 'allow',
    mode: 'audit',
    wouldDeny: true,
    ruleId: 'trial-no-delete',
    engine: 'builtin',
  })
  t.same(
    x.matching.map((m: { ruleId: string }) => m.ruleId),
    ['agents-use-mcp', 'trial-no-delete'],
  )
})

t.test('policy explain: usage errors exit 2 and say what is wrong', async (t) => {
  const base = ['policy', 'explain', '--policy', EXAMPLE]
  const cases: [string[], RegExp][] = [
    [[...base, '--tool', 'x'], /--subject ID is required/],
    [[...base, '--subject', AGENT], /exactly one of --route/],
    [[...base, '--subject', AGENT, '--tool', 'x', '--model', 'y'], /exactly one of --route/],
    [[...base, '--subject', 'spiffe://Bad/x', '--tool', 'x'], /--subject: /],
    [[...base, '--subject', AGENT, '--route', 'GET'], /--route needs a value/],
    [[...base, '--subject', AGENT, '--tool', 'x', '--context', '{nope'], /--context is not JSON/],
    [[...base, '--subject', AGENT, '--tool', 'x', '--context', '{"colour":1}'], /unknown key "colour"/],
    [[...base, '--subject', AGENT, '--tool', 'x', '--bogus'], /unknown argument "--bogus"/],
  ]
  for (const [args, re] of cases) {
    const r = await svidecar(...args)
    t.equal(r.code, 2, args.join(' '))
    t.match(r.stderr, re, args.join(' '))
  }
  const invalid = join(t.testdir(), 'bad.yaml')
  writeFileSync(invalid, 'version: 7\nrules: []\n')
  const r = await svidecar('policy', 'explain', '--policy', invalid, '--subject', AGENT, '--tool', 'x')
  t.equal(r.code, 2)
  t.match(r.stderr, /bad\.yaml:1:1: version: expected 1/)
})
