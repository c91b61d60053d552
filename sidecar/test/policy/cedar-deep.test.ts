// A Cedar file nested deeper than cedar-wasm's stack holds must be refused before cedar-wasm parses it: a stack
// overflow inside the WebAssembly module leaves its memory broken, and every later decision of the last good
// policy (and every reload) then fails with "memory access out of bounds". A bad file on reload must keep the
// last good policy deciding (issue 9, "Bad input").
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { createCedarEngine } from '../../src/policy/cedar/engine.ts'
import type { PolicyRequest } from '../../src/policy/engine.ts'

const ask: PolicyRequest = {
  subject: SpiffeId.parse('spiffe://td/agent'),
  resource: { kind: 'mcp.tool', name: 'search' },
  context: { time: new Date('2026-11-30T10:00:00Z'), attributes: { n: 1 } },
}

t.test(
  'deeply nested policies are SVD_POLICY_INVALID with a position; the last good set keeps deciding',
  async (t) => {
    const dir = t.testdir()
    const good = join(dir, 'good.cedar')
    writeFileSync(
      good,
      'permit(principal, action == Spiffe::Action::"mcp.tool", resource) when { resource.name == "search" };\n',
    )
    const engine = createCedarEngine(good)
    t.match(engine.decide(ask), { decision: 'allow', ruleId: 'policy0' })
    const deep = (n: number, open: string, inner: string, close: string) =>
      `${open.repeat(n)}${inner}${close.repeat(n)}`
    const cases: [string, string][] = [
      ['parentheses', deep(400, '(', 'true', ')')],
      ['sets', `${deep(400, '[', '', ']')} == []`],
      ['records', `${deep(400, '{a: ', '1', '}')} == {}`],
      ['negations', `${deep(400, '-(', '1', ')')} < 0`],
      ['if-then-else', `${deep(2000, 'if true then ', 'true', ' else false')}`],
      ['a sum that parses but overflows when evaluated', `${Array(500).fill('1').join(' + ')} > 0`],
      ['a conjunction evaluated by recursion', Array(1000).fill('(1 > 0)').join(' && ')],
      ['an attribute chain', `context${'.a'.repeat(30_000)} == 1`],
      ['a sum too long to parse', `${Array(30_000).fill('1').join(' + ')} > 0`],
    ]
    for (const [name, when] of cases) {
      const bad = join(dir, `${name}.cedar`)
      writeFileSync(bad, `// ${name}\npermit(principal, action, resource)\n  when { ${when} };\n`)
      t.throws(() => createCedarEngine(bad), { code: 'SVD_POLICY_INVALID', issues: [{ line: 3 }] }, name)
      t.match(
        engine.decide(ask),
        { decision: 'allow', ruleId: 'policy0' },
        `after ${name}: the good set still decides`,
      )
      t.match(
        createCedarEngine(good).decide(ask),
        { decision: 'allow' },
        `after ${name}: a good file still loads`,
      )
    }
  },
)

t.test('nesting a real policy uses is fine, and decides', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'ok.cedar')
  const when = `${'('.repeat(30)}context.attributes.n == 1${')'.repeat(30)} && (${'if true then '.repeat(30)}true${' else false'.repeat(30)}) && ${Array(60).fill('1').join(' + ')} > 0 && ${Array(40).fill('(1 > 0)').join(' && ')} && [[[{a: [1]}]]] != []`
  writeFileSync(
    file,
    `permit(principal, action, resource) when { ${when} };\n// a comment with ((((( and "quotes\nforbid(principal, action, resource) when { resource.name == "((((((" };\n`,
  )
  const d = createCedarEngine(file).decide(ask)
  t.match(d, { decision: 'allow', ruleId: 'policy0' }, d.reason)
})

t.test('a schema nested too deep is refused the same way', async (t) => {
  const dir = t.testdir()
  const policy = join(dir, 'p.cedar')
  writeFileSync(policy, 'permit(principal, action, resource);\n')
  const schema = join(dir, 's.cedarschema')
  writeFileSync(schema, `entity Spiffe::Workload = ${'{ a: '.repeat(300)}Long${' }'.repeat(300)};\n`)
  t.throws(() => createCedarEngine(policy, { schema }), {
    code: 'SVD_POLICY_INVALID',
    issues: [{ path: '(schema)' }],
  })
  t.match(createCedarEngine(policy).decide(ask), { decision: 'allow' })
})

t.test(
  'a wide policy is not a deep one: 150 alternatives of two tests each, and a 300-element set, load and decide',
  async (t) => {
    const dir = t.testdir()
    const file = join(dir, 'wide.cedar')
    const alternatives = Array.from(
      { length: 150 },
      (_, i) => `(principal.trustDomain == "td" && resource.name == "tool${i}")`,
    )
    writeFileSync(
      file,
      `permit(principal, action, resource) when { ${alternatives.join(' || ')} || [${Array(300).fill('context.attributes.n').join(', ')}].contains(1) };\n`,
    )
    t.match(createCedarEngine(file).decide(ask), { decision: 'allow', ruleId: 'policy0' })
  },
)
