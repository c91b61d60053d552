// The scenario suite against the built-in engine; the cases are data (scenarios.ts) that every engine runs.
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import type { PolicyRequest, PolicyResource } from '../../src/policy/engine.ts'
import { parsePolicy } from '../../src/policy/file.ts'
import { DEFAULT_TIME, SCENARIOS, type ScenarioCase } from './scenarios.ts'

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

const total = SCENARIOS.reduce((n, g) => n + g.cases.length, 0)
t.ok(total >= 30, `the suite has at least 30 cases (${total})`)

for (const group of SCENARIOS) {
  t.test(group.name, async (t) => {
    const { engine } = parsePolicy(group.policy, `${group.name}.yaml`)
    for (const c of group.cases) {
      const d = engine.decide(toRequest(c))
      const e = c.expect
      t.equal(d.decision, e.decision, `${c.name}: decision (${d.reason})`)
      t.equal(d.ruleId, e.ruleId, `${c.name}: rule`)
      if (e.mode !== undefined) t.equal(d.mode, e.mode, `${c.name}: mode`)
      t.equal(d.wouldDeny === true, e.wouldDeny === true, `${c.name}: wouldDeny`)
      t.equal(d.conditionError?.ruleId, e.conditionError, `${c.name}: condition error`)
      if (e.conditionError !== undefined)
        t.match(d.reason, /condition failed/, `${c.name}: the reason says so`)
      t.equal(d.engine, 'builtin')
    }
  })
}
