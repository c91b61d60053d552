// `svidecar policy explain --engine cedar` (and the --engine flags' usage errors), run as the real CLI.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { svidecar } from '../helpers/cli.ts'

const EXAMPLE = fileURLToPath(new URL('../../../deploy/examples/policies/mesh.yaml', import.meta.url))

const AGENT = 'spiffe://example.org/ns/agents/sa/planner'

const CEDAR_EXAMPLE = fileURLToPath(new URL('../../../deploy/examples/policies/mesh.cedar', import.meta.url))

t.test(
  'policy explain --engine cedar: the Cedar decision, the policy that decided, near misses',
  async (t) => {
    const denied = await svidecar(
      'policy',
      'explain',
      '--engine',
      'cedar',
      '--policy',
      CEDAR_EXAMPLE,
      '--subject',
      AGENT,
      '--tool',
      'admin_reset',
    )
    t.equal(denied.code, 1, denied.stderr)
    t.match(denied.stdout, /decision: DENY by rule no-admin-tools\n/)
    t.match(denied.stdout, /engine: cedar/)
    t.match(denied.stdout, /matching rules:\n {2}no-admin-tools \(deny, enforce\): condition: true \(when \{/)
    t.match(
      denied.stdout,
      /near misses:\n[\s\S]*agents-use-mcp \(allow, enforce\)\n {4}lacks {2}condition: false/,
    )
    t.match(
      denied.stdout,
      /agents-use-gpt-4o \(allow, enforce\)\n {4}lacks {2}action: mcp\.tool does not satisfy action == Spiffe::Action::"llm\.model"/,
    )

    const allowed = await svidecar(
      'policy',
      'explain',
      '--engine=cedar',
      '--policy',
      CEDAR_EXAMPLE,
      '--subject',
      AGENT,
      '--model',
      'gpt-4o-mini',
      '--json',
    )
    t.equal(allowed.code, 0, allowed.stderr)
    const x = JSON.parse(allowed.stdout)
    t.match(x.decision, { decision: 'allow', ruleId: 'agents-use-gpt-4o', engine: 'cedar' })
    t.match(x.matching, [
      {
        ruleId: 'agents-use-gpt-4o',
        matched: true,
        met: [
          /^action: action == Spiffe::Action::"llm\.model"$/,
          /^resource: resource is Spiffe::Model$/,
          /^condition: true/,
        ],
      },
    ])

    const audit = await svidecar(
      'policy',
      'explain',
      '--engine',
      'cedar',
      '--mode',
      'audit',
      '--policy',
      CEDAR_EXAMPLE,
      '--subject',
      'spiffe://other.example/x',
      '--tool',
      'search_docs',
    )
    t.equal(audit.code, 0, 'audit mode lets the default deny through')
    t.match(audit.stdout, /decision: ALLOWED \(audit mode: the policy denies it\)/)
  },
)

t.test('policy explain --engine: usage errors and a bad Cedar file', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--engine', 'rego', '--policy', CEDAR_EXAMPLE], /--engine must be builtin, cedar or opa/],
    [['--engine', 'opa', '--opa-url', 'http://127.0.0.1:8181'], /needs --opa-url URL and --opa-package PKG/],
    [
      ['--engine', 'opa', '--opa-url', 'http://x:1', '--opa-package', 'a.b', '--policy', EXAMPLE],
      /no --policy/,
    ],
    [['--policy', EXAMPLE, '--opa-url', 'http://x:1'], /go with --engine opa/],
    [['--policy', EXAMPLE, '--mode', 'audit'], /go with --engine cedar/],
    [['--engine', 'cedar', '--policy', CEDAR_EXAMPLE, '--mode', 'loose'], /--mode must be enforce or audit/],
  ]
  for (const [args, re] of cases) {
    const r = await svidecar('policy', 'explain', ...args, '--subject', AGENT, '--tool', 'x')
    t.equal(r.code, 2, args.join(' '))
    t.match(r.stderr, re, args.join(' '))
  }
  const bad = join(t.testdir(), 'bad.cedar')
  writeFileSync(bad, 'permit (principal, action, resource) when { 1 + };\n')
  const r = await svidecar(
    'policy',
    'explain',
    '--engine',
    'cedar',
    '--policy',
    bad,
    '--subject',
    AGENT,
    '--tool',
    'x',
  )
  t.equal(r.code, 2)
  t.match(r.stderr, /bad\.cedar:1:\d+: /)
})
