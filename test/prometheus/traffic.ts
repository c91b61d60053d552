/**
 * A two-sidecar mesh on the dev Workload API with the signals the alerts and
 * the dashboard watch: allowed requests, a policy denial, and a TLS handshake
 * the inbound listener refuses (a client with no certificate).
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'node:tls'
import type { Test } from 'tap'
import { AGENT, type Mesh, startMesh } from '../../sidecar/test/helpers/mesh.ts'

const POLICY = `version: 1
mode: enforce
rules:
  - id: agent-echo
    effect: allow
    subjects: ["${AGENT}"]
    resources:
      - kind: http.route
        path: /echo
`

export async function startPolicedMesh(t: Test): Promise<Mesh> {
  const policy = join(t.testdir(), 'policy.yaml')
  writeFileSync(policy, POLICY)
  return startMesh(t, { serverYaml: `policy: { file: "${policy}" }\n` })
}

/** `http://127.0.0.1:port` of a sidecar's admin listener. */
export function adminUrl(sidecar: Mesh['agentSidecar']): string {
  return `http://127.0.0.1:${sidecar.addresses.admin.port}`
}

/** One allowed request, one the server's policy denies, one refused handshake. */
export async function sendTraffic(t: Test, mesh: Mesh): Promise<void> {
  const ok = await fetch(`${mesh.outboundUrl}/echo`, { method: 'POST', body: 'hello' })
  t.equal(ok.status, 200, 'allowed request reaches the app')
  await ok.arrayBuffer()
  const denied = await fetch(`${mesh.outboundUrl}/admin/reset`, { method: 'POST' })
  t.equal(denied.status, 403, 'the policy denies /admin')
  await denied.arrayBuffer()
  // No client certificate: the inbound listener refuses the handshake and counts it.
  await new Promise<void>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: mesh.inboundPort, rejectUnauthorized: false })
    socket.on('error', () => resolve())
    socket.on('close', () => resolve())
    socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'))
    socket.resume()
  })
}
