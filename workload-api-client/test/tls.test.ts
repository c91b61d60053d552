// The library's SPIFFE mTLS helpers as any Node app uses them: a plain node:https server with
// SpiffeTlsServer, and undici's fetch with spiffeDispatcher, nothing else, against the dev
// Workload API speaking real gRPC. SPIRE-issued SVIDs: test/spire/library-tls.test.ts.
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { connect as http2Connect, createSecureServer as http2Server } from 'node:http2'
import { type Server as HttpsServer, request as httpsRequest, createServer as httpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { type TLSSocket, connect as tlsConnect } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { DevCa, DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { fetch as undiciFetch } from 'undici'
import {
  type IdMatcher,
  isSpiffeError,
  matchId,
  matchMemberOf,
  peerChain,
  peerIdOf,
  type SpiffeError,
  SpiffeTlsClient,
  SpiffeTlsServer,
  verifyX509Svid,
  X509Source,
} from 'workload-api-client'
import { spiffeDispatcher } from 'workload-api-client/undici'
import { waitFor } from './helpers/wait.ts'

const SERVER = 'spiffe://example.org/api'
const CLIENT = 'spiffe://example.org/client'
const OTHER = 'spiffe://example.org/other'
const pkg = fileURLToPath(new URL('..', import.meta.url))

// SVIDs arrive as leaf + 2 intermediates, as from SPIRE under an UpstreamAuthority: the server side must verify
// the whole presented chain (nodejs/node#65579 drops it when OpenSSL's own verification succeeds).
const api = await DevWorkloadApi.start({
  intermediates: 2,
  workloads: [{ spiffeId: SERVER, federatesWith: ['other.td'] }, { spiffeId: CLIENT }, { spiffeId: OTHER }],
})
t.teardown(() => api.close())

async function source(t: Test, spiffeId: string): Promise<X509Source> {
  const s = await X509Source.create({ address: api.endpoint, spiffeId, timeoutMs: 10_000 })
  t.teardown(() => s.close())
  return s
}

interface Served {
  server: HttpsServer
  url: string
  port: number
  refused: SpiffeError[]
  /** What the server saw of each accepted client, read when it was accepted. */
  accepted: { serial: string; chainLength: number }[]
  handled: number
}

async function serve(t: Test, authorizer: IdMatcher = matchId(CLIENT)): Promise<Served> {
  const refused: SpiffeError[] = []
  const accepted: Served['accepted'] = []
  const spiffe = new SpiffeTlsServer({
    source: await source(t, SERVER),
    authorizer,
    onRefused: (err) => refused.push(err),
    onAccepted: (_id, socket) =>
      accepted.push({
        serial: socket.getPeerCertificate().serialNumber,
        chainLength: peerChain(socket).length,
      }),
  })
  const served = { refused, accepted, handled: 0 } as Served
  const server = spiffe.attach(
    httpsServer({ ...spiffe.options, keepAlive: false }, (req, res) => {
      served.handled++
      res.setHeader('connection', 'close')
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
  served.server = server
  served.port = (server.address() as AddressInfo).port
  served.url = `https://127.0.0.1:${served.port}/`
  return served
}

function causeOf(err: unknown): unknown {
  return (err as { cause?: unknown }).cause
}

t.test(
  '[C13] a plain https server and fetch through the dispatcher, chains with intermediates',
  async (t) => {
    const served = await serve(t)
    const dispatcher = spiffeDispatcher({ source: await source(t, CLIENT), authorizer: matchId(SERVER) })
    t.teardown(() => dispatcher.close())
    const viaUndici = await undiciFetch(served.url, { dispatcher })
    t.equal(viaUndici.status, 200)
    t.equal(await viaUndici.text(), CLIENT, 'the server saw the client SPIFFE ID')
    t.same(served.refused, [])
    t.equal(served.accepted[0]?.chainLength, 3, 'the server verified leaf + 2 intermediates the client sent')
  },
)

t.test('https.request through the client httpsAgent, tls.connect through connect()', async (t) => {
  const served = await serve(t)
  const client = new SpiffeTlsClient({ source: await source(t, CLIENT), authorizer: matchId(SERVER) })
  const agent = client.httpsAgent()
  t.teardown(() => agent.destroy())
  const body = await new Promise<string>((resolve, reject) => {
    const req = httpsRequest(served.url, { agent }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        text += c
      })
      res.on('end', () => resolve(text))
    })
    req.on('error', reject)
    req.end()
  })
  t.equal(body, CLIENT)
  const socket = await client.connect({ host: '127.0.0.1', port: served.port })
  t.teardown(() => socket.destroy())
  t.equal(peerIdOf(socket)?.toString(), SERVER, 'the verified server ID is on the socket')
})

t.test('connect() never sends an IP literal as SNI (RFC 6066 3), and sends a name', async (t) => {
  const served = await serve(t)
  const seen: (string | false)[] = []
  served.server.on('secureConnection', (socket: TLSSocket & { servername: string | false }) =>
    seen.push(socket.servername),
  )
  const client = new SpiffeTlsClient({ source: await source(t, CLIENT), authorizer: matchId(SERVER) })
  for (const servername of ['127.0.0.1', '::1', undefined, 'api.example']) {
    const socket = await client.connect({ host: '127.0.0.1', port: served.port, servername })
    const before = seen.length
    await waitFor(() => seen.length > before, 'the server to see the handshake')
    socket.destroy()
  }
  t.same(seen, [false, false, false, 'api.example'])
})

t.test('an http2 secure server, and an http2 client over connect()', async (t) => {
  const spiffe = new SpiffeTlsServer({ source: await source(t, SERVER), authorizer: matchId(CLIENT) })
  const server = spiffe.attach(
    http2Server({ ...spiffe.options, ALPNProtocols: ['h2'] }, (req, res) => {
      // req.socket is http2's proxy of the TLS socket; peerIdOf reads through it.
      res.end(`${peerIdOf(req.socket)}`)
    }),
  )
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    spiffe.close()
    server.close()
  })
  const port = (server.address() as AddressInfo).port
  const client = new SpiffeTlsClient({ source: await source(t, CLIENT), authorizer: matchId(SERVER) })
  const socket = await client.connect({ host: '127.0.0.1', port, ALPNProtocols: ['h2'] })
  t.equal(socket.alpnProtocol, 'h2')
  const session = http2Connect(`https://127.0.0.1:${port}`, { createConnection: () => socket })
  t.teardown(() => session.close())
  const body = await new Promise<string>((resolve, reject) => {
    const stream = session.request({ ':path': '/' })
    let text = ''
    stream.setEncoding('utf8')
    stream.on('data', (c: string) => {
      text += c
    })
    stream.on('end', () => resolve(text))
    stream.on('error', reject)
    stream.end()
  })
  t.equal(body, CLIENT)
})

t.test('[C27] a client refuses a server with the wrong ID before sending a byte', async (t) => {
  const served = await serve(t)
  const dispatcher = spiffeDispatcher({ source: await source(t, CLIENT), authorizer: matchId(OTHER) })
  t.teardown(() => dispatcher.close())
  const err = await undiciFetch(served.url, { dispatcher }).then(
    () => undefined,
    (e: unknown) => e,
  )
  const cause = causeOf(err)
  t.ok(isSpiffeError(cause, 'SPIFFE_PEER_UNAUTHORIZED'), 'refused with the library code')
  t.equal((cause as SpiffeError).reason, 'UNAUTHORIZED')
  t.equal(served.handled, 0, 'no request reached the handler')
})

t.test(
  '[C26] a server refuses a client with the wrong ID; no request byte reaches the handler',
  async (t) => {
    const served = await serve(t, matchId(OTHER))
    const dispatcher = spiffeDispatcher({ source: await source(t, CLIENT), authorizer: matchId(SERVER) })
    t.teardown(() => dispatcher.close())
    // TLS 1.3: the client's handshake completes before the server judges it; the refusal shows on the request.
    await t.rejects(undiciFetch(served.url, { dispatcher }))
    await waitFor(() => served.refused.length > 0, 'the refusal')
    t.equal(served.refused[0]?.code, 'SPIFFE_PEER_UNAUTHORIZED')
    t.equal(served.refused[0]?.reason, 'UNAUTHORIZED')
    t.equal(served.handled, 0)
  },
)

t.test(
  '[C23] a leaf of our trust domain signed by a federated CA is refused like verifyX509Svid refuses it',
  async (t) => {
    const other = DevCa.create({ trustDomain: 'other.td' })
    api.setFederatedBundle('other.td', { x509: other })
    t.teardown(() => api.setFederatedBundle('other.td', undefined))
    const served = await serve(t, matchMemberOf('example.org'))
    const serverSource = await source(t, SERVER)
    await waitFor(() => serverSource.bundles.has('other.td'), 'the federated bundle')
    const forged = other.issueX509Svid({ spiffeId: CLIENT })
    const expected = (() => {
      try {
        verifyX509Svid(forged.certificates, serverSource)
        return undefined
      } catch (err) {
        return err as SpiffeError
      }
    })()
    t.equal(expected?.code, 'SPIFFE_CHAIN_UNVERIFIED')
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: served.port,
      key: forged.keyPem,
      cert: forged.certChainPem,
      rejectUnauthorized: false,
    })
    t.teardown(() => socket.destroy())
    socket.on('error', () => {})
    await waitFor(() => served.refused.length > 0, 'the refusal')
    t.equal(served.refused[0]?.code, expected?.code, 'same code as verifyX509Svid')
    t.equal(served.refused[0]?.reason, expected?.reason, 'same reason as verifyX509Svid')
    t.equal(served.refused[0]?.reason, 'UNKNOWN_AUTHORITY')
  },
)

t.test('a client with no certificate is refused as an empty chain', async (t) => {
  const served = await serve(t)
  const socket = tlsConnect({ host: '127.0.0.1', port: served.port, rejectUnauthorized: false })
  t.teardown(() => socket.destroy())
  socket.on('error', () => {})
  await waitFor(() => served.refused.length > 0, 'the refusal')
  t.equal(served.refused[0]?.code, 'SPIFFE_SVID_INVALID')
  t.equal(served.refused[0]?.reason, 'EMPTY')
})

t.test('[C31] [C32] rotations reach new handshakes on both sides without a restart', async (t) => {
  const served = await serve(t)
  const clientSource = await source(t, CLIENT)
  const client = new SpiffeTlsClient({ source: clientSource, authorizer: matchId(SERVER) })
  const handshake = async () => {
    const before = served.accepted.length
    const socket = await client.connect({ host: '127.0.0.1', port: served.port })
    const serverSerial = socket.getPeerCertificate().serialNumber
    await waitFor(() => served.accepted.length > before, 'the server side of the handshake')
    const clientSerial = served.accepted.at(-1)?.serial
    socket.destroy()
    return { serverSerial, clientSerial }
  }
  const first = await handshake()
  const oldClient = clientSource.getX509Svid().serialNumber
  t.equal(first.clientSerial, oldClient)

  api.rotateNow()
  await waitFor(() => clientSource.getX509Svid().serialNumber !== oldClient, 'the client rotation')
  const serverSource = served.server // the same listening server throughout
  await waitFor(async () => (await handshake()).serverSerial !== first.serverSerial, 'the server rotation')
  const second = await handshake()
  t.equal(second.clientSerial, clientSource.getX509Svid().serialNumber, 'the client presents its new SVID')
  t.not(second.serverSerial, first.serverSerial, 'the server presents its new SVID')
  t.ok(serverSource.listening, 'no restart')

  // A CA rotation: new roots and new SVIDs under them, then the old root leaves every bundle.
  api.rotateCa()
  await waitFor(() => clientSource.getX509Svid().serialNumber !== second.clientSerial, 'SVIDs of the new CA')
  api.retireOldRoots()
  await waitFor(
    () => (clientSource.bundles.get('example.org')?.authorities.length ?? 0) === 1,
    'the old root to leave',
  )
  await waitFor(async () => {
    try {
      await handshake()
      return true
    } catch {
      return false
    }
  }, 'a handshake under the new CA alone')
  t.same(
    served.refused.filter((e) => e.code !== 'SPIFFE_CHAIN_UNVERIFIED'),
    [],
    'no other refusal',
  )
})

t.test('no usable SVID: the client opens nothing, the server holds no certificate', async (t) => {
  const empty = { svid: undefined, bundles: (await source(t, CLIENT)).bundles, onUpdate: () => () => {} }
  const client = new SpiffeTlsClient({ source: empty, authorizer: matchId(SERVER) })
  const err = await client.connect({ host: '127.0.0.1', port: 1 }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(isSpiffeError(err, 'SPIFFE_WLAPI_NO_IDENTITY'))
  // A server built from options but never attached, or attached to an empty source, completes no handshake.
  const spiffe = new SpiffeTlsServer({ source: empty, authorizer: matchId(CLIENT) })
  const server = spiffe.attach(httpsServer(spiffe.options, (_req, res) => res.end('reached')))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const real = new SpiffeTlsClient({ source: await source(t, CLIENT), authorizer: matchId(SERVER) })
  await t.rejects(real.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port }))
})

t.test('the mTLS example runs: server and fetch client, nothing else', async (t) => {
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ['--conditions=svidecar-source', `${pkg}/examples/mtls.ts`],
    { env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: api.endpoint, SERVER_ID: SERVER, CLIENT_ID: CLIENT } },
  )
  t.equal(stdout, `200 hello ${CLIENT}\n`)
  t.equal(stderr, '')
})
