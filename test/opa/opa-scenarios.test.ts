// The policy scenario suite (sidecar/test/policy/scenarios.ts) against a real OPA server loaded with the
// hand-written Rego equivalents in rego/, through the OPA engine; each case must decide like the built-in.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createOpaEngine, type PolicyRequest, type PolicyResource, parsePolicy } from 'svidecar'
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { DEFAULT_TIME, SCENARIOS, type ScenarioCase } from '../../sidecar/test/helpers/policy-scenarios.ts'
import { startOpa } from '../harness/opa.ts'
import { requireOpa } from '../harness/opa-available.ts'

/** The Rego library the scenario policies are written on, the one the examples ship. */
const LIB = '../../deploy/examples/policies/opa/svidecar_lib.rego'

/** The Rego package of each scenario group. */
const PACKAGES: Record<string, string> = {
  'allow, deny and the default': 'svidecar.scenarios.basic',
  'subject patterns, trust domains and lists': 'svidecar.scenarios.subjects',
  'resource patterns': 'svidecar.scenarios.resources',
  conditions: 'svidecar.scenarios.conditions',
  'audit mode per rule': 'svidecar.scenarios.audit_rules',
  'audit mode for the whole policy': 'svidecar.scenarios.audit_policy',
  'an empty policy': 'svidecar.scenarios.empty',
}

function toRequest(c: ScenarioCase): PolicyRequest {
  const ctx = c.context ?? {}
  return {
    subject: SpiffeId.parse(c.subject),
    ...(c.peer === undefined ? {} : { peer: SpiffeId.parse(c.peer) }),
    // Unknown kinds are part of the suite on purpose: the engine must deny what it does not know.
    resource: c.resource as unknown as PolicyResource,
    context: {
      time: new Date(ctx.time ?? DEFAULT_TIME),
      ...(ctx.direction === undefined ? {} : { direction: ctx.direction }),
      ...(ctx.headers === undefined ? {} : { headers: ctx.headers }),
      ...(ctx.attributes === undefined ? {} : { attributes: ctx.attributes }),
    },
  }
}

if (requireOpa(t)) {
  const regoDir = join(import.meta.dirname, 'rego')
  const modules: Record<string, string> = {
    'svidecar_lib.rego': readFileSync(join(import.meta.dirname, LIB), 'utf8'),
  }
  for (const f of readdirSync(regoDir))
    if (f.endsWith('.rego')) modules[f] = readFileSync(join(regoDir, f), 'utf8')
  const opa = await startOpa(t, modules)

  t.test('every scenario group has a Rego package', async (t) => {
    t.same(Object.keys(PACKAGES).sort(), SCENARIOS.map((g) => g.name).sort())
  })

  for (const group of SCENARIOS) {
    t.test(`opa: ${group.name}`, async (t) => {
      const pkg = PACKAGES[group.name]
      if (pkg === undefined) return
      const builtin = parsePolicy(group.policy, `${group.name}.yaml`).engine
      // A generous deadline: this suite checks decisions, and the machine may be busy.
      const engine = createOpaEngine({ url: opa.url, package: pkg, timeoutMs: 5000 })
      t.teardown(() => engine.close())
      for (const c of group.cases) {
        const request = toRequest(c)
        const d = await engine.decide(request)
        const b = builtin.decide(request) as Awaited<ReturnType<typeof builtin.decide>>
        const e = c.expect
        t.equal(d.engine, 'opa', `${c.name}: engine`)
        t.notMatch(d.reason, /^opa: /, `${c.name}: OPA answered (${d.reason})`)
        t.equal(d.decision, e.decision, `${c.name}: decision (${d.reason})`)
        t.equal(d.ruleId, e.ruleId, `${c.name}: rule`)
        if (e.mode !== undefined) t.equal(d.mode, e.mode, `${c.name}: mode`)
        t.equal(d.wouldDeny === true, e.wouldDeny === true, `${c.name}: wouldDeny`)
        // The same decision as the built-in engine on the same request, field by field.
        t.same(
          { decision: d.decision, ruleId: d.ruleId, mode: d.mode, wouldDeny: d.wouldDeny },
          { decision: b.decision, ruleId: b.ruleId, mode: b.mode, wouldDeny: b.wouldDeny },
          `${c.name}: as the built-in decides`,
        )
        if (e.conditionError !== undefined) {
          // NOT EQUIVALENT, on purpose: a CEL condition that fails at run time is a built-in concept. The
          // Rego states CEL's rule as an explicit clause, so the decision and the rule are the same, but
          // OPA's result has no condition-error field, so the OPA decision does not carry one.
          t.equal(d.conditionError, undefined, `${c.name}: OPA reports no CEL condition error`)
        }
      }
    })
  }
}
