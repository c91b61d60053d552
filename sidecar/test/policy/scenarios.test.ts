// The scenario suite, one set of cases (scenarios.ts) run against every in-process engine: the built-in
// engine on each group's policy, and the Cedar engine on its Cedar equivalent (translated by
// translateToCedar, or written by hand where the translator refuses: scenarios-cedar.ts).
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { SpiffeId } from 'workload-api-client'
import { createCedarEngine } from '../../src/policy/cedar/engine.ts'
import { translateToCedar } from '../../src/policy/cedar/translate.ts'
import type { PolicyEngine, PolicyRequest, PolicyResource } from '../../src/policy/engine.ts'
import { parsePolicy } from '../../src/policy/file.ts'
import { DEFAULT_TIME, SCENARIOS, type ScenarioCase, type ScenarioGroup } from './scenarios.ts'
import { HAND_WRITTEN_CEDAR } from './scenarios-cedar.ts'

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

/**
 * Cases an engine cannot decide like the others, with the reason; each is still run and must give the
 * decision stated here, so the list cannot go stale silently. Empty today: every case agrees.
 */
const NOT_EXPRESSIBLE: Record<string, Record<string, string>> = { builtin: {}, cedar: {} }

interface EngineUnderTest {
  name: string
  engineFor(t: Test, group: ScenarioGroup): PolicyEngine
}

const ENGINES: EngineUnderTest[] = [
  { name: 'builtin', engineFor: (_t, group) => parsePolicy(group.policy, `${group.name}.yaml`).engine },
  {
    name: 'cedar',
    engineFor: (t, group) => {
      const { document } = parsePolicy(group.policy, `${group.name}.yaml`)
      const hand = HAND_WRITTEN_CEDAR[group.name]
      const { text, mode } =
        hand === undefined ? translateToCedar(document) : { text: hand, mode: document.mode ?? 'enforce' }
      const file = join(t.testdir(), 'policy.cedar')
      writeFileSync(file, text)
      return createCedarEngine(file, { mode })
    },
  },
]

const total = SCENARIOS.reduce((n, g) => n + g.cases.length, 0)
t.ok(total >= 30, `the suite has at least 30 cases (${total})`)

for (const under of ENGINES) {
  t.test(under.name, async (t) => {
    for (const group of SCENARIOS) {
      t.test(group.name, async (t) => {
        const engine = under.engineFor(t, group)
        for (const c of group.cases) {
          t.notOk(NOT_EXPRESSIBLE[under.name]?.[c.name], `${c.name}: expressible in ${under.name}`)
          const d = await engine.decide(toRequest(c))
          const e = c.expect
          t.equal(d.decision, e.decision, `${c.name}: decision (${d.reason})`)
          t.equal(d.ruleId, e.ruleId, `${c.name}: rule`)
          if (e.mode !== undefined) t.equal(d.mode, e.mode, `${c.name}: mode`)
          t.equal(d.wouldDeny === true, e.wouldDeny === true, `${c.name}: wouldDeny`)
          t.equal(d.conditionError?.ruleId, e.conditionError, `${c.name}: condition error`)
          if (e.conditionError !== undefined)
            t.match(d.reason, /condition failed/, `${c.name}: the reason says so`)
          t.equal(d.engine, under.name)
        }
      })
    }
  })
}
