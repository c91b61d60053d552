// A resumed TLS session carries the peer's leaf only, not the intermediates
// it presented (OpenSSL keeps the peer certificate in the session, not its
// chain), so the server completes the path from what full handshakes
// presented. Resumption must keep working for any number of peers: SPIRE
// under an UpstreamAuthority signs every leaf of a trust domain through the
// same few intermediates, and a server that recalled chains per leaf, in a
// bounded memory, refused a legitimate peer's resumption once a thousand
// other leaves had passed (a gateway in front of many agents), and the peer
// resumed the same refused session again on every retry.
import { once } from 'node:events'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { type TLSSocket, connect as tlsConnect } from 'node:tls'
import { DevWorkloadApi } from '@svidecar/certs'
import t from 'tap'
import { matchMemberOf, type SpiffeError, SpiffeTlsServer, X509Source } from 'workload-api-client'
import { waitFor } from './helpers/wait.ts'

const SERVER = 'spiffe://example.org/api'

t.test('a resumed session verifies after thousands of other peers’ leaves', async (t) => {
  const api = await DevWorkloadApi.start({ intermediates: 1, workloads: [{ spiffeId: SERVER }] })
  t.teardown(() => api.close())
  const source = await X509Source.create({ address: api.endpoint, spiffeId: SERVER, timeoutMs: 10_000 })
  t.teardown(() => source.close())
  const refused: SpiffeError[] = []
  let accepted = 0
  const spiffe = new SpiffeTlsServer({
    source,
    authorizer: matchMemberOf('example.org'),
    onRefused: (err) => refused.push(err),
    onAccepted: () => accepted++,
  })
  const server = spiffe.attach(createServer({ ...spiffe.options }, (_req, res) => res.end('ok')))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    spiffe.close()
    server.closeAllConnections()
    server.close()
  })
  const port = (server.address() as AddressInfo).port
  const handshake = async (svid: { keyPem: string; certChainPem: string }, session?: Buffer) => {
    const before = accepted + refused.length
    let ticket: Buffer | undefined
    const socket: TLSSocket = tlsConnect({
      host: '127.0.0.1',
      port,
      key: svid.keyPem,
      cert: svid.certChainPem,
      rejectUnauthorized: false,
      ...(session === undefined ? {} : { session }),
    })
    socket.on('error', () => {})
    socket.on('session', (s: Buffer) => {
      ticket = s
    })
    await once(socket, 'secureConnect')
    const reused = socket.isSessionReused()
    await waitFor(() => accepted + refused.length > before, 'the server’s verdict')
    if (session === undefined) await waitFor(() => ticket !== undefined, 'a session ticket')
    socket.destroy()
    return { ticket, reused }
  }
  const first = api.ca.issueX509Svid({ spiffeId: 'spiffe://example.org/agent/0' })
  t.equal(first.certificates.length, 2, 'leaf + intermediate')
  const { ticket } = await handshake(first)
  // Other peers, each with its own leaf, all through the same intermediate.
  const others = 1100
  for (let i = 1; i <= others; i += 25) {
    await Promise.all(
      Array.from({ length: Math.min(25, others + 1 - i) }, (_, k) =>
        handshake(api.ca.issueX509Svid({ spiffeId: `spiffe://example.org/agent/${i + k}` })),
      ),
    )
  }
  t.same(refused, [], 'every full handshake passed')
  const again = await handshake(first, ticket)
  t.ok(again.reused, 'the client resumed its session')
  t.same(
    refused.map((e) => e.reason),
    [],
    'the resumed session verified: leaf + the intermediate other peers presented',
  )
})
