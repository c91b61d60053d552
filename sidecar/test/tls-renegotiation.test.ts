// RFC 5746 lets a TLS 1.2 peer renegotiate an established connection: a new
// handshake inside the old one, which node:tls allows by default (three per
// ten minutes) and which neither side's SPIFFE check sees, since the peer was
// verified at the first handshake only. Each one costs the server a full
// handshake (the DoS that made Node cap them, CVE-2011-1473) and may bring a
// different certificate than the one the connection was admitted with. The
// sidecar refuses every renegotiation in both directions (TLS 1.3 has none:
// RFC 8446 §4.1.2 removed it). Real sockets, real OpenSSL on both ends.
import { once } from 'node:events'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { connect, createServer as createTlsServer, type TLSSocket } from 'node:tls'
import { DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { matchId } from 'workload-api-client'
import { Identity } from '../src/identity/identity.ts'
import { httpServerOptions, ProxyListener } from '../src/listener/server.ts'
import { ClientTls } from '../src/tls/client-tls.ts'
import { httpsConnector } from '../src/tls/https-connector.ts'
import { tlsParameters } from '../src/tls/profiles.ts'
import { ServerTls } from '../src/tls/server-tls.ts'

const AGENT = 'spiffe://example.org/agent'
const MCP = 'spiffe://example.org/mcp'
const quick = () => ({ next: () => 50, reset() {} })
const INTERMEDIATE = tlsParameters('intermediate', 'TLSv1.2')
const LIMITS = {
  maxHeaderBytes: 16_384,
  maxHeaderCount: 100,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 0,
  idleTimeoutMs: 60_000,
  bodyIdleTimeoutMs: 60_000,
  maxBodyBytes: 0,
  maxConnections: 64,
}

async function setup(t: Test) {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp' },
    ],
  })
  t.teardown(() => api.close())
  const agent = Identity.start({ socket: api.endpoint, hint: 'agent', backoff: quick })
  const mcp = Identity.start({ socket: api.endpoint, hint: 'mcp', backoff: quick })
  t.teardown(() => agent.close())
  t.teardown(() => mcp.close())
  await agent.waitReady(5000)
  await mcp.waitReady(5000)
  return { api, agent, mcp }
}

/** A plain node:tls server that asks every client to renegotiate; resolves with the first outcome. */
async function renegotiatingServer(t: Test, svid: { keyPem: string; certChainPem: string }) {
  const server = createTlsServer({
    key: svid.keyPem,
    cert: svid.certChainPem,
    maxVersion: 'TLSv1.2',
    requestCert: true,
    rejectUnauthorized: false,
  })
  const outcome = new Promise<string>((resolve) => {
    server.on('secureConnection', (socket: TLSSocket) => {
      renegotiate(socket).then(resolve)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return { port: (server.address() as AddressInfo).port, outcome }
}

/** Resolves with the outcome of a renegotiation `socket` starts: 'accepted' or the error's code. */
function renegotiate(socket: TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    socket.on('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message))
    socket.on('close', () => resolve('closed'))
    const started = socket.renegotiate({ rejectUnauthorized: false }, (err) =>
      resolve(err ? ((err as Error & { code?: string }).code ?? err.message) : 'accepted'),
    )
    if (!started) resolve('not started')
  })
}

t.test(
  'inbound: a TLS 1.2 client that renegotiates is refused, and its request before it served',
  async (t) => {
    const { agent, mcp } = await setup(t)
    const tls = new ServerTls(mcp, {
      listener: 'in-reneg',
      authorizer: matchId(AGENT),
      params: INTERMEDIATE,
      handshakeTimeoutMs: 10_000,
    })
    let requests = 0
    const server = createHttpsServer(
      { ...httpServerOptions(LIMITS), ...tls.serverOptions() },
      (_req, res) => {
        requests++
        res.end('ok')
      },
    )
    new ProxyListener('in-reneg', 'inbound', server, LIMITS)
    tls.attach(server)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => {
      tls.close()
      server.closeAllConnections()
      server.close()
    })
    const own = agent.current()
    if (own === undefined) throw new Error('no SVID')
    const socket = connect({
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      key: own.keyPem,
      cert: own.certChainPem,
      rejectUnauthorized: false,
      maxVersion: 'TLSv1.2',
    })
    t.teardown(() => socket.destroy())
    await once(socket, 'secureConnect')
    t.equal(socket.getProtocol(), 'TLSv1.2')
    socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n')
    const [first] = await once(socket, 'data')
    t.match(String(first), /^HTTP\/1\.1 200/, 'the connection works before')
    const result = await renegotiate(socket)
    t.equal(result, 'ERR_SSL_NO_RENEGOTIATION', 'the renegotiation is refused')
    t.equal(requests, 1)
  },
)

t.test('outbound: an upstream that asks to renegotiate (HelloRequest) is refused', async (t) => {
  const { agent, mcp } = await setup(t)
  const own = mcp.current()
  if (own === undefined) throw new Error('no SVID')
  // Nothing in a plain node:tls server refuses what the client agrees to.
  const { port, outcome } = await renegotiatingServer(t, own)
  const client = new ClientTls(agent, {
    upstream: 'mcp',
    authorizer: matchId(MCP),
    params: INTERMEDIATE,
    connectTimeoutMs: 5000,
  })
  const socket = await new Promise<TLSSocket>((resolve, reject) =>
    client.connect({ hostname: '127.0.0.1', port }, (err, s) =>
      err ? reject(err) : resolve(s as TLSSocket),
    ),
  )
  socket.on('error', () => {})
  t.teardown(() => socket.destroy())
  t.equal(socket.getProtocol(), 'TLSv1.2')
  // The client reads, so that it processes the HelloRequest.
  socket.resume()
  const result = await outcome
  t.equal(result, 'ERR_SSL_NO_RENEGOTIATION', 'the renegotiation is refused')
})

t.test('outbound to a plain HTTPS upstream: its renegotiation is refused too', async (t) => {
  const { api, agent } = await setup(t)
  const { port, outcome } = await renegotiatingServer(
    t,
    api.ca.issueX509Svid({ spiffeId: MCP, dnsNames: ['localhost'] }),
  )
  const connect = httpsConnector(agent, {
    upstream: 'api',
    params: INTERMEDIATE,
    ca: api.bundlePem(),
    connectTimeoutMs: 5000,
  })
  const socket = await new Promise<TLSSocket>((resolve, reject) =>
    connect(
      {
        hostname: 'localhost',
        host: 'localhost',
        protocol: 'https:',
        port: String(port),
        servername: 'localhost',
      },
      (...args) => (args[0] === null ? resolve(args[1] as TLSSocket) : reject(args[0])),
    ),
  )
  socket.on('error', () => {})
  t.teardown(() => socket.destroy())
  t.equal(socket.getProtocol(), 'TLSv1.2')
  socket.resume()
  t.equal(await outcome, 'ERR_SSL_NO_RENEGOTIATION', 'the renegotiation is refused')
})
