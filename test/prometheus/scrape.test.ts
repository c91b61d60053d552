// A real Prometheus server scrapes two running sidecars every second, with the shipped alert rules loaded, and
// its HTTP API answers with the series a dashboard and the alerts read. When the Workload API goes away, the
// reachability gauge drops while the held SVID keeps the sidecars ready, and the real rule goes pending.
import { join } from 'node:path'
import t from 'tap'
import { REPO_ROOT } from '../harness/image.ts'
import { Prometheus, type QueryResult } from '../harness/prometheus.ts'
import { filled, loadDashboard, queries } from './dashboard.ts'
import { adminUrl, sendTraffic, startPolicedMesh } from './traffic.ts'

const total = (r: QueryResult[]) => r.reduce((sum, s) => sum + Number(s.value[1]), 0)

t.test('prometheus scrapes the sidecars and the series are there', async (t) => {
  const mesh = await startPolicedMesh(t)
  const agent = new URL(adminUrl(mesh.agentSidecar)).host
  const server = new URL(adminUrl(mesh.serverSidecar)).host
  const prometheus = await Prometheus.start({
    targets: [agent, server],
    scrapeInterval: '1s',
    ruleFiles: [join(REPO_ROOT, 'deploy/prometheus/alerts.yaml')],
  })
  t.teardown(() => prometheus.close())

  const up = await prometheus.waitFor('up{job="svidecar"} == 1', (r) => r.length === 2)
  t.same(up.map((s) => s.metric.instance).sort(), [agent, server].sort(), 'both targets up')

  await sendTraffic(t, mesh)
  const ok = await prometheus.waitFor(
    'sum by (instance, direction) (svidecar_requests_total{status_class="2xx"})',
    (r) => r.length === 2,
  )
  t.same(
    Object.fromEntries(ok.map((s) => [s.metric.direction, s.metric.instance])),
    { outbound: agent, inbound: server },
    'the 2xx request counted on both sides',
  )
  const denied = await prometheus.waitFor(
    'svidecar_requests_total{status_class="4xx", code="SVD_POLICY_DENIED"}',
    (r) => total(r) >= 1,
  )
  t.equal(denied[0]?.metric.instance, server, 'the server sidecar answered the denial')
  await prometheus.waitFor(
    'svidecar_policy_decisions_total{decision="deny", action="http.route"}',
    (r) => total(r) === 1,
  )
  const rejected = await prometheus.waitFor(
    'svidecar_tls_rejections_total{direction="inbound"}',
    (r) => total(r) >= 1,
  )
  t.equal(rejected[0]?.metric.instance, server)
  t.ok(rejected[0]?.metric.reason, 'the rejection has its reason label')
  const expiry = await prometheus.query('svidecar_svid_expiry_timestamp_seconds - time()')
  t.equal(expiry.length, 2)
  for (const s of expiry) t.ok(Number(s.value[1]) > 0, `${s.metric.instance}: the SVID expires in the future`)
  t.equal(total(await prometheus.query('svidecar_ready')), 2, 'both ready')
  // A rate needs the counter to move between two scrapes of a series that already exists.
  const again = await fetch(`${mesh.outboundUrl}/echo`, { method: 'POST', body: 'again' })
  t.equal(again.status, 200)
  await again.arrayBuffer()
  const latency = await prometheus.waitFor(
    'histogram_quantile(0.99, sum by (le) (rate(svidecar_request_duration_seconds_bucket[1m])))',
    (r) => r.length === 1 && Number(r[0]?.value[1]) > 0,
  )
  t.ok(Number(latency[0]?.value[1]) <= 300, 'a p99 latency within the histogram buckets')
  t.equal(total(await prometheus.query('svidecar_workload_api_reachable')), 2)
  // The dashboard's queries parse and run, and those that read series this traffic fills find them (a rate
  // needs two scrapes of a series, so each is polled).
  // Series this mesh never fills: it makes no LLM calls, refuses, aborts and reloads nothing, and its engine never fails.
  const unfilled =
    /svidecar_llm_budget_refusals_total|svidecar_llm_tokens_total|svidecar_llm_time_to_first_token_seconds|svidecar_requests_aborted_total|svidecar_connections_refused_total|svidecar_audit_write_errors_total|svidecar_policy_reloads_total|svidecar_policy_errors_total/
  for (const { panel, expr } of queries(loadDashboard())) {
    const empty = unfilled.test(expr)
    const result = await prometheus.waitFor(filled(expr), (r) => empty || r.length > 0, 20_000)
    t.ok(empty || result.length > 0, `${panel}: ${empty ? 'runs' : 'answers with data'}`)
  }

  const loaded = (await prometheus.rules()).flatMap((g) => g.rules)
  t.equal(loaded.length, 7, 'the seven alert rules are loaded')
  const deadline = Date.now() + 30_000
  while (loaded.some((r) => r.health !== 'ok') && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250))
    loaded.splice(0, loaded.length, ...(await prometheus.rules()).flatMap((g) => g.rules))
  }
  for (const r of loaded) t.equal(r.health, 'ok', `${r.name} evaluates (${r.lastError ?? ''})`)

  // The SPIRE agent goes away: the SVIDs held are still valid, so only the reachability gauge shows it.
  await mesh.api.stop()
  await prometheus.waitFor('svidecar_workload_api_reachable == 0', (r) => r.length === 2)
  t.equal(total(await prometheus.query('svidecar_ready')), 2, 'still ready on the SVIDs they hold')
  const pending = await prometheus.waitFor(
    'ALERTS{alertname="SvidecarWorkloadApiUnreachable", alertstate="pending"}',
    (r) => r.length === 2,
  )
  t.same(
    pending.map((s) => s.metric.severity),
    ['warning', 'warning'],
    'the shipped rule saw it',
  )
  await mesh.api.resume()
  await prometheus.waitFor('svidecar_workload_api_reachable == 1', (r) => r.length === 2)
  t.pass('reachable again after the agent came back')
})
