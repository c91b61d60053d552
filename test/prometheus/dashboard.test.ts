// The Grafana dashboard in deploy/grafana reads only metrics the sidecar's registry has (or that the LLM branch
// is adding, named in promql.ts), shows every svidecar_* family, and is a well-formed dashboard.
// scrape.test.ts runs its queries against a real Prometheus.
import t from 'tap'
import { allPanels, loadDashboard, queries } from './dashboard.ts'
import { metricNames, PENDING_METRICS, sidecarSeriesNames } from './promql.ts'

const dashboard = loadDashboard()

t.test('every query reads metrics the sidecar exposes', async (t) => {
  const known = await sidecarSeriesNames()
  const all = queries(dashboard)
  t.ok(all.length >= 20, `${all.length} queries`)
  for (const { panel, expr } of all) {
    const names = metricNames(expr)
    t.ok(names.size > 0, `${panel}: reads a metric`)
    for (const name of names)
      t.ok(known.has(name) || PENDING_METRICS.has(name), `${panel}: ${name} is a sidecar metric`)
  }
})

t.test('every svidecar_* family has a panel', async (t) => {
  const read = new Set(queries(dashboard).flatMap(({ expr }) => [...metricNames(expr)]))
  const family = (series: string) => series.replace(/_(bucket|sum|count)$/, '')
  const shown = new Set([...read].map(family))
  for (const name of await sidecarSeriesNames()) {
    if (name.startsWith('svidecar_')) t.ok(shown.has(family(name)), `${family(name)} is on the dashboard`)
  }
})

t.test('variables read existing metrics; panels are well formed', async (t) => {
  const known = await sidecarSeriesNames()
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue
    const query = typeof v.query === 'string' ? v.query : (v.query?.query ?? '')
    const m = /^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(query)
    t.ok(m !== null && known.has(m[1] as string), `variable ${v.name}: ${query}`)
  }
  t.ok(dashboard.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'))
  const panels = allPanels(dashboard)
  t.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique')
  for (const p of panels) {
    t.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title}: fits the 24-column grid`)
    if (p.type === 'row') continue
    t.ok((p.targets ?? []).length > 0, `${p.title}: has a query`)
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template.
    t.equal(p.datasource?.uid, '${datasource}', `${p.title}: uses the data source variable`)
  }
})
