// A resumed TLS session carries the peer's leaf only, not the intermediates
// it presented (OpenSSL keeps the peer certificate in the session, not its
// chain), so the server completes the path from what full handshakes
// presented. Resumption must keep working for any number of peers: SPIRE
// under an UpstreamAuthority signs every leaf of a trust domain through the
// same few intermediates, and a server that recalled chains per leaf, in a
// bounded memory, refused a legitimate peer's resumption once a thousand
// other leaves had passed (a gateway in front of many agents), and the peer
// resumed the same refused session again on every retry.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { createServer as createTlsServer, type TLSSocket, connect as tlsConnect } from 'node:tls'
import { DevWorkloadApi } from '@svidecar/certs'
import t from 'tap'
import {
  matchId,
  matchMemberOf,
  type SpiffeError,
  SpiffeTlsClient,
  SpiffeTlsServer,
  X509Source,
} from 'workload-api-client'
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

t.test('a client does not resume a session whose server certificate has expired since', async (t) => {
  // A server that keeps its ticket keys across a certificate change, as Go's crypto/tls (ghostunnel) does: it
  // resumes a session made under its previous certificate, which the resumed handshake does not show again.
  const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: 'spiffe://example.org/client' }] })
  t.teardown(() => api.close())
  const source = await X509Source.create({
    address: api.endpoint,
    spiffeId: 'spiffe://example.org/client',
    timeoutMs: 10_000,
  })
  t.teardown(() => source.close())
  const shortLived = api.ca.issueX509Svid({ spiffeId: SERVER, ttlMs: 1500 })
  const next = api.ca.issueX509Svid({ spiffeId: SERVER })
  const ticketKeys = randomBytes(48)
  const server = createTlsServer({
    key: shortLived.keyPem,
    cert: shortLived.certChainPem,
    requestCert: true,
    rejectUnauthorized: false,
    ticketKeys,
  })
  server.on('secureConnection', (socket: TLSSocket) => {
    socket.on('error', () => {})
    socket.end('hi')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const port = (server.address() as AddressInfo).port
  const client = new SpiffeTlsClient({ source, authorizer: matchId(SERVER) })
  const first = await client.connect({ host: '127.0.0.1', port })
  // The session arrives with the server's first bytes.
  first.resume()
  await once(first, 'end')
  first.destroy()
  const notAfter = shortLived.certificates[0]?.validToDate.getTime() ?? 0
  await waitFor(() => Date.now() > notAfter + 50, 'the first certificate to expire')
  server.setSecureContext({ key: next.keyPem, cert: next.certChainPem })
  server.setTicketKeys(ticketKeys)
  const second = await client.connect({ host: '127.0.0.1', port })
  t.teardown(() => second.destroy())
  t.notOk(second.isSessionReused(), 'a full handshake, not the expired session')
  t.equal(second.getPeerX509Certificate()?.serialNumber, next.certificates[0]?.serialNumber)
})
