// [C44] mTLS interop with ghostunnel, a SPIFFE-aware proxy nobody here wrote,
// both ways, with SVIDs from the same SPIRE agent; a wrong ID is refused on both sides.

import { createLogger, parseConfig, Sidecar } from 'svidecar'
import t from 'tap'
import { EchoApp } from '../../sidecar/test/helpers/echo-app.ts'
import { startSidecars } from '../../sidecar/test/helpers/mesh.ts'
import { startGhostunnel } from '../harness/ghostunnel.ts'
import { Spire } from '../harness/spire.ts'
import { requireSpire } from '../harness/spire-available.ts'

const AGENT = 'spiffe://example.org/agent'
const MCP = 'spiffe://example.org/mcp'
const GHOST = 'spiffe://example.org/ghostunnel'
// ghostunnel takes the first SVID the agent offers; its own uid gives it exactly one.
const NOBODY = 65534
const quiet = createLogger({ level: 'error', stream: { write: () => true } })

if (requireSpire(t)) {
  const spire = await Spire.start({
    entries: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp' },
      { spiffeId: GHOST, selectors: [`unix:uid:${NOBODY}`] },
    ],
  })
  t.teardown(() => spire.close())

  /** An agent-side sidecar whose only upstream is at `port`, expected to be `expect`. */
  async function agentSidecar(port: number, expect: string) {
    const sidecar = await Sidecar.start(
      parseConfig(
        `workloadApi: { socket: "${spire.endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: peer }]
upstreams:
  peer: { url: "https://127.0.0.1:${port}", spiffe: { exact: "${expect}" } }
`,
        'agent.yaml',
        {},
      ),
      { logger: quiet },
    )
    t.teardown(() => sidecar.destroy())
    await sidecar.identity.waitReady(30_000)
    return `http://127.0.0.1:${sidecar.addresses.outbound.egress?.port}`
  }

  t.test('[C44] spire: svidecar outbound → ghostunnel server (--allow-uri) → app', async (t) => {
    const app = await EchoApp.start()
    t.teardown(() => app.close())
    const target = `--target=127.0.0.1:${new URL(app.url).port}`
    const allowing = await startGhostunnel('server', [target, `--allow-uri=${AGENT}`], {
      workloadApi: spire.endpoint,
      uid: NOBODY,
    })
    t.teardown(() => allowing.close())
    const ok = await fetch(`${await agentSidecar(allowing.port, GHOST)}/via-ghostunnel`)
    t.equal(ok.status, 200, 'ghostunnel accepted svidecar’s SVID')
    t.equal(app.seen.at(-1)?.url, '/via-ghostunnel')

    const seen = app.seen.length
    const refusing = await startGhostunnel(
      'server',
      [target, '--allow-uri=spiffe://example.org/someone-else'],
      {
        workloadApi: spire.endpoint,
        uid: NOBODY,
      },
    )
    t.teardown(() => refusing.close())
    const refused = await fetch(`${await agentSidecar(refusing.port, GHOST)}/x`)
    t.ok(
      refused.status >= 500,
      `refused by ghostunnel (${refused.status} ${refused.headers.get('x-svidecar-error')})`,
    )
    t.equal(app.seen.length, seen, 'nothing reached the app')

    const wrongPeer = await fetch(`${await agentSidecar(allowing.port, MCP)}/x`)
    t.equal(wrongPeer.status, 502, 'svidecar refuses ghostunnel when it expects another ID')
    t.equal(wrongPeer.headers.get('x-svidecar-error'), 'SVD_UPSTREAM_PEER_REJECTED')
    t.equal(app.seen.length, seen)
  })

  t.test('[C44] spire: ghostunnel client (--verify-uri) → svidecar inbound → app', async (t) => {
    const mesh = await startSidecars(t, spire.endpoint, { allow: GHOST, readyTimeoutMs: 30_000 })
    const inbound = `--target=127.0.0.1:${mesh.serverSidecar.addresses.inbound.public?.port}`
    const client = await startGhostunnel('client', [inbound, `--verify-uri=${MCP}`], {
      workloadApi: spire.endpoint,
      uid: NOBODY,
    })
    t.teardown(() => client.close())
    const res = await fetch(`http://127.0.0.1:${client.port}/from-ghostunnel`)
    t.equal(res.status, 200)
    t.same(
      await res.json(),
      { method: 'GET', url: '/from-ghostunnel', peer: GHOST },
      'the app sees ghostunnel’s verified ID',
    )

    const wrong = await startGhostunnel(
      'client',
      [inbound, '--verify-uri=spiffe://example.org/someone-else'],
      {
        workloadApi: spire.endpoint,
        uid: NOBODY,
      },
    )
    t.teardown(() => wrong.close())
    const seen = mesh.app.seen.length
    const failed = await fetch(`http://127.0.0.1:${wrong.port}/x`).then(
      (r) => r.status,
      () => 0,
    )
    t.not(failed, 200, 'ghostunnel refuses svidecar when it expects another ID')
    t.equal(mesh.app.seen.length, seen)
  })

  t.test('[C44] spire: svidecar inbound refuses ghostunnel when it is not allowed', async (t) => {
    const mesh = await startSidecars(t, spire.endpoint, { allow: AGENT, readyTimeoutMs: 30_000 })
    const inbound = `--target=127.0.0.1:${mesh.serverSidecar.addresses.inbound.public?.port}`
    const client = await startGhostunnel('client', [inbound, `--verify-uri=${MCP}`], {
      workloadApi: spire.endpoint,
      uid: NOBODY,
    })
    t.teardown(() => client.close())
    const seen = mesh.app.seen.length
    const status = await fetch(`http://127.0.0.1:${client.port}/x`).then(
      (r) => r.status,
      () => 0,
    )
    t.not(status, 200)
    t.equal(mesh.app.seen.length, seen, 'nothing reached the app')
  })
}
