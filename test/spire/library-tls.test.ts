// The library's SPIFFE mTLS helpers with SPIRE's own SVIDs: a plain node:https server with SpiffeTlsServer and
// undici's fetch with spiffeDispatcher, nothing else. SPIRE runs under an UpstreamAuthority, so every SVID
// arrives as leaf + intermediate and the server side must verify the chain the client presented.
import { once } from 'node:events'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { fetch } from 'undici'
import {
  matchId,
  peerIdOf,
  type SpiffeError,
  SpiffeTlsClient,
  SpiffeTlsServer,
  X509Source,
} from 'workload-api-client'
import { spiffeDispatcher } from 'workload-api-client/undici'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { Spire } from '../harness/spire.ts'
import { requireSpire } from '../harness/spire-available.ts'

const SERVER = 'spiffe://example.org/lib/server'
const CLIENT = 'spiffe://example.org/lib/client'
const OTHER = 'spiffe://example.org/lib/other'

if (requireSpire(t)) {
  const spire = await Spire.start({
    upstreamAuthority: 'disk',
    entries: [
      // 20 s SVIDs: SPIRE renews at about half the lifetime, so the server rotates every ~10 s.
      { spiffeId: SERVER, hint: 'server', x509SvidTtlSeconds: 20 },
      { spiffeId: CLIENT, hint: 'client' },
      { spiffeId: OTHER, hint: 'other' },
    ],
  })
  t.teardown(() => spire.close())

  const source = async (t: Test, spiffeId: string) => {
    const s = await X509Source.create({ address: spire.endpoint, spiffeId, timeoutMs: 30_000 })
    t.teardown(() => s.close())
    return s
  }

  const serve = async (t: Test, serverSource: X509Source, allowed: string) => {
    const refused: SpiffeError[] = []
    const spiffe = new SpiffeTlsServer({
      source: serverSource,
      authorizer: matchId(allowed),
      onRefused: (err) => refused.push(err),
    })
    const server = spiffe.attach(
      createServer(spiffe.options, (req, res) => {
        res.end(`${peerIdOf(req.socket)}`)
      }),
    )
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => {
      spiffe.close()
      server.closeAllConnections()
      server.close()
    })
    return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/`, refused }
  }

  t.test('spire: a plain https server and fetch through the dispatcher, leaf + intermediate', async (t) => {
    const served = await serve(t, await source(t, SERVER), CLIENT)
    const dispatcher = spiffeDispatcher({ source: await source(t, CLIENT), authorizer: matchId(SERVER) })
    t.teardown(() => dispatcher.close())
    const res = await fetch(served.url, { dispatcher })
    t.equal(res.status, 200)
    t.equal(await res.text(), CLIENT)
    t.same(served.refused, [])
  })

  t.test('spire: a wrong-ID peer is refused on both sides', async (t) => {
    const served = await serve(t, await source(t, SERVER), CLIENT)
    const other = await source(t, OTHER)
    const asOther = spiffeDispatcher({ source: other, authorizer: matchId(SERVER) })
    t.teardown(() => asOther.close())
    await t.rejects(fetch(served.url, { dispatcher: asOther }))
    await waitFor(() => served.refused.length > 0, 'the server refusal')
    t.equal(served.refused[0]?.code, 'SPIFFE_PEER_UNAUTHORIZED')

    const wrongServer = spiffeDispatcher({ source: await source(t, CLIENT), authorizer: matchId(OTHER) })
    t.teardown(() => wrongServer.close())
    const err = await fetch(served.url, { dispatcher: wrongServer }).then(
      () => undefined,
      (e: unknown) => (e as { cause?: SpiffeError }).cause,
    )
    t.equal(err?.code, 'SPIFFE_PEER_UNAUTHORIZED')
    t.equal(err?.reason, 'UNAUTHORIZED')
  })

  t.test('spire: a SPIRE rotation of the server SVID is picked up without a restart', async (t) => {
    const serverSource = await source(t, SERVER)
    const served = await serve(t, serverSource, CLIENT)
    const client = await source(t, CLIENT)
    const seen = new Set<string>()
    const first = serverSource.getX509Svid().serialNumber
    // A new connection per request, so every request is a handshake with whatever the server holds now.
    const request = async () => {
      const dispatcher = spiffeDispatcher({ source: client, authorizer: matchId(SERVER) })
      try {
        const res = await fetch(served.url, { dispatcher })
        t.equal(await res.text(), CLIENT)
      } finally {
        await dispatcher.close()
      }
    }
    serverSource.onUpdate((s) => {
      if (s.svid !== undefined) seen.add(s.svid.serialNumber)
    })
    await request()
    await waitFor(() => [...seen].some((serial) => serial !== first), 'a SPIRE rotation', 60_000, 200)
    const rotated = serverSource.getX509Svid().serialNumber
    await request()
    // What the server presents now, seen through a raw connection of the library client.
    const socket = await new SpiffeTlsClient({ source: client, authorizer: matchId(SERVER) }).connect({
      host: '127.0.0.1',
      port: new URL(served.url).port,
    })
    const presented = socket.getPeerCertificate().serialNumber
    socket.destroy()
    const now = serverSource.getX509Svid().serialNumber
    t.ok(presented === rotated || presented === now, 'the server presents its rotated SVID')
    t.not(presented, first)
    t.same(served.refused, [])
  })
}
