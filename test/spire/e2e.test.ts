// The full traffic suite (JSON, chunked, SSE, WebSocket, abort, crash) with identities from real SPIRE.
import t from 'tap'
import { AGENT, MCP, startSidecars } from '../../sidecar/test/helpers/mesh.ts'
import { trafficSuite } from '../../sidecar/test/helpers/traffic-suite.ts'
import { Spire } from '../harness/spire.ts'
import { requireSpire } from '../harness/spire-available.ts'

if (requireSpire(t)) {
  const spire = await Spire.start({
    entries: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp' },
    ],
  })
  t.teardown(() => spire.close())

  t.test('spire: end to end over mTLS with SVIDs from a real SPIRE agent', async (t) => {
    trafficSuite(t, await startSidecars(t, spire.endpoint, { readyTimeoutMs: 30_000 }))
  })
}
