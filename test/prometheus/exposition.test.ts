// `promtool check metrics` (Prometheus's own linter: names, types, units, help) on what running sidecars serve
// at /metrics, after traffic has filled every family that has labels.
import { execFile } from 'node:child_process'
import t from 'tap'
import { adminUrl, sendTraffic, startPolicedMesh } from './traffic.ts'

function promtoolCheckMetrics(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, output: `${stdout}${stderr}` })
    })
    child.stdin?.end(text)
  })
}

t.test('promtool accepts the whole /metrics of both sidecars of a mesh with traffic', async (t) => {
  const mesh = await startPolicedMesh(t)
  await sendTraffic(t, mesh)
  for (const [who, sidecar] of [
    ['agent', mesh.agentSidecar],
    ['server', mesh.serverSidecar],
  ] as const) {
    const res = await fetch(`${adminUrl(sidecar)}/metrics`)
    t.equal(res.status, 200)
    t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    t.match(text, /^svidecar_requests_total\{/m, `${who}: request counters are there`)
    t.match(text, /^process_cpu_seconds_total /m, `${who}: the process metrics too`)
    const { code, output } = await promtoolCheckMetrics(text)
    t.equal(output.trim(), '', `${who}: no lint findings`)
    t.equal(code, 0, `${who}: promtool exit code`)
  }
  const server = await (await fetch(`${adminUrl(mesh.serverSidecar)}/metrics`)).text()
  t.match(server, /^svidecar_policy_decisions_total\{[^}]*decision="deny"/m, 'the denial was counted')
  t.match(server, /^svidecar_tls_rejections_total\{[^}]*direction="inbound"/m, 'the refused handshake too')
})
