// Case 24 for established connections: a SpiffeTlsServer verifies its clients at the handshake, and again
// on every source update, so a kept-alive connection from a federated trust domain does not outlive the
// bundle that admitted it. Real parts: the dev Workload API over gRPC, an X509Source, node:https, and a
// Node https client holding a partner SVID on a keep-alive agent.
import { once } from 'node:events'
import { Agent, createServer as httpsServer, request } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { DevCa, DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import {
  matchMemberOf,
  reverifyTlsPeer,
  type SpiffeError,
  SpiffeTlsServer,
  X509Source,
} from 'workload-api-client'
import { waitFor } from './helpers/wait.ts'

const SERVER = 'spiffe://example.org/api'
const PARTNER = 'spiffe://partner.example/agent'

async function setup(t: Test, reverifyOnUpdate?: boolean) {
  const partner = DevCa.create({ trustDomain: 'partner.example' })
  const api = await DevWorkloadApi.start({
    workloads: [{ spiffeId: SERVER, federatesWith: ['partner.example'] }],
  })
  t.teardown(() => api.close())
  api.setFederatedBundle('partner.example', { x509: partner })
  const source = await X509Source.create({ address: api.endpoint, timeoutMs: 10_000 })
  t.teardown(() => source.close())
  await waitFor(() => source.bundles.has('partner.example'), 'federation')
  const refused: SpiffeError[] = []
  const spiffe = new SpiffeTlsServer({
    source,
    authorizer: matchMemberOf('partner.example'),
    onRefused: (err) => refused.push(err),
    ...(reverifyOnUpdate === undefined ? {} : { reverifyOnUpdate }),
  })
  t.teardown(() => spiffe.close())
  let handled = 0
  const server = spiffe.attach(
    httpsServer(spiffe.options, (_req, res) => {
      handled++
      res.end('ok')
    }),
  )
  // Idle keep-alive connections stay open well past the test: only the re-verification may close one.
  server.keepAliveTimeout = 120_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const svid = partner.issueX509Svid({ spiffeId: PARTNER })
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 1,
    cert: svid.certChainPem,
    key: svid.keyPem,
    ca: api.bundlePem(),
    checkServerIdentity: () => undefined,
  })
  t.teardown(() => agent.destroy())
  const port = (server.address() as AddressInfo).port
  const get = async () => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent })
    req.end()
    const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage]
    res.resume()
    await once(res, 'end')
    return { socket: req.socket as TLSSocket, reused: req.reusedSocket }
  }
  return { api, source, refused, handled: () => handled, get }
}

t.test('[C24] a kept-alive client of a federated trust domain is cut when its bundle leaves', async (t) => {
  const { api, source, refused, handled, get } = await setup(t)
  const { socket: clientSide } = await get()
  t.equal(handled(), 1)
  api.setFederatedBundle('partner.example', undefined)
  await waitFor(() => !source.bundles.has('partner.example'), 'the bundle to leave')
  await waitFor(() => clientSide.destroyed || clientSide.readyState === 'closed', 'the server to close it')
  t.match(refused, [{ code: 'SPIFFE_BUNDLE_NOT_FOUND' }])
  t.equal(handled(), 1, 'no request was served after the bundle left')
})

t.test('reverifyOnUpdate: false leaves the judgement to the application, per request', async (t) => {
  const { api, source, refused, handled, get } = await setup(t, false)
  await get()
  api.setFederatedBundle('partner.example', undefined)
  await waitFor(() => !source.bundles.has('partner.example'), 'the bundle to leave')
  const second = await get()
  t.equal(second.reused, true, 'the connection was kept')
  t.equal(handled(), 2)
  t.equal(refused.length, 0)
})

t.test('reverifyTlsPeer on a socket nobody verified is an empty chain', async (t) => {
  t.throws(() => reverifyTlsPeer({} as TLSSocket, { getX509BundleForTrustDomain: () => undefined }), {
    code: 'SPIFFE_SVID_INVALID',
    reason: 'EMPTY',
  })
})
