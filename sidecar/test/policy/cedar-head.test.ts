// The quick reader of policy heads (annotations, effect, == scopes) against Cedar's own policyToJson: it
// must agree whenever it answers, and answer for the common shapes.
import { readFileSync } from 'node:fs'
import { policySetTextToParts } from '@cedar-policy/cedar-wasm/nodejs'
import t from 'tap'
import { readPolicyHead } from '../../src/policy/cedar/head.ts'
import { cedarPolicyHead } from '../../src/policy/cedar/load.ts'
import { translateToCedar } from '../../src/policy/cedar/translate.ts'
import { parsePolicy } from '../../src/policy/file.ts'
import { SCENARIOS } from './scenarios.ts'
import { HAND_WRITTEN_CEDAR } from './scenarios-cedar.ts'

const TRICKY = `
// a comment before everything
@id("esc\\"aped\\\\ \\u{e9}\\n") // a comment between annotations
@flag
@mode("audit")
forbid (principal, action, resource);

permit (
  principal == Spiffe :: Workload :: "spiffe://example.org/a b",  // spaces around ::
  action == Spiffe::Action::"mcp.tool",
  resource
);

permit (principal in Spiffe::Group::"g", action in [Spiffe::Action::"a", Spiffe::Action::"b,)"], resource);
permit (principal is Spiffe::Workload in Spiffe::Group::"x", action in Spiffe::Action::"all", resource == Spiffe::Tool::"t");
permit (principal is Spiffe::Workload, action, resource is Spiffe::Tool) when { resource.name == "x" };
forbid (principal == A::B::C::"deep", action == Spiffe::Action::"llm.model", resource) unless { false };
permit (principal == Spiffe::Workload::"\\u{1F600}\\t\\0\\'", action, resource);
permit (principal // a comment inside the scope
  == Spiffe::Workload::"c", action, resource);
`

function corpus(): string[] {
  const texts = [TRICKY, ...Object.values(HAND_WRITTEN_CEDAR)]
  texts.push(readFileSync(new URL('../../../deploy/examples/policies/mesh.cedar', import.meta.url), 'utf8'))
  for (const g of SCENARIOS) {
    const { document } = parsePolicy(g.policy, 'g.yaml')
    if (document.rules.every((r) => r.when === undefined)) texts.push(translateToCedar(document).text)
  }
  const out: string[] = []
  for (const text of texts) {
    const parts = policySetTextToParts(text)
    if (parts.type !== 'success')
      throw new Error(`corpus text does not parse: ${JSON.stringify(parts.errors)}`)
    out.push(...parts.policies)
  }
  return out
}

t.test('the reader agrees with Cedar whenever it answers', async (t) => {
  const policies = corpus()
  let answered = 0
  for (const p of policies) {
    const quick = readPolicyHead(p)
    const exact = cedarPolicyHead(p)
    t.not(typeof exact, 'string', 'Cedar reads every corpus policy')
    if (quick === undefined) continue
    answered++
    t.same(quick, exact, p.split('\n').find((l) => !l.startsWith('//')) ?? p)
  }
  t.ok(
    answered >= policies.length - 2,
    `the reader answers for nearly all (${answered} of ${policies.length})`,
  )
})
