// The alert rules in deploy/prometheus: promtool accepts them, their unit tests pass, every alert has a test
// that makes it fire, and every metric they read exists in the sidecar's registry.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { REPO_ROOT } from '../harness/image.ts'
import { metricNames, PENDING_METRICS, sidecarSeriesNames } from './promql.ts'

const DIR = join(REPO_ROOT, 'deploy/prometheus')

function promtool(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile('promtool', args, { cwd: DIR }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, output: `${stdout}${stderr}` })
    })
  })
}

interface RuleFile {
  groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; expr: string }> }>
}
interface RuleTests {
  rule_files: string[]
  tests: Array<{
    alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }>
  }>
}

const rules = parse(readFileSync(join(DIR, 'alerts.yaml'), 'utf8')) as RuleFile
const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined)

t.test('promtool check rules', async (t) => {
  const { code, output } = await promtool(['check', 'rules', 'alerts.yaml'])
  t.equal(code, 0, output)
  t.match(output, `SUCCESS: ${alerts.length} rules found`)
})

t.test('promtool check config: the compose scrape config and the rule file it loads', async (t) => {
  const { code, output } = await promtool(['check', 'config', 'prometheus.compose.yml'])
  t.equal(code, 0, output)
  t.match(output, 'SUCCESS: 1 rule files found')
})

t.test('promtool test rules: every case passes', async (t) => {
  const { code, output } = await promtool(['test', 'rules', 'alerts.test.yaml'])
  t.equal(code, 0, output)
  t.match(output, /SUCCESS/)
})

t.test(
  'the alerts the deployment promises, each with a case where it fires and one where it does not',
  async (t) => {
    t.same(alerts.map((a) => a.alert).sort(), [
      'SvidecarAuthorizationDenialSpike',
      'SvidecarLlmBudgetExhausted',
      'SvidecarNotReady',
      'SvidecarPolicyEngineFailing',
      'SvidecarSvidExpiringSoon',
      'SvidecarTlsRejectionSpike',
      'SvidecarWorkloadApiUnreachable',
    ])
    const tests = parse(readFileSync(join(DIR, 'alerts.test.yaml'), 'utf8')) as RuleTests
    t.same(tests.rule_files, ['alerts.yaml'])
    const cases = tests.tests.flatMap((c) => c.alert_rule_test ?? [])
    for (const { alert } of alerts) {
      const mine = cases.filter((c) => c.alertname === alert)
      t.ok(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${alert}: a case where it fires`,
      )
      t.ok(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${alert}: a case where it stays quiet`,
      )
    }
  },
)

t.test('the rules read only metrics the sidecar exposes', async (t) => {
  const known = await sidecarSeriesNames()
  for (const rule of rules.groups.flatMap((g) => g.rules)) {
    const names = metricNames(rule.expr)
    t.ok(names.size > 0, `${rule.alert}: reads a metric`)
    for (const name of names)
      t.ok(known.has(name) || PENDING_METRICS.has(name), `${rule.alert}: ${name} is a sidecar metric`)
  }
})
