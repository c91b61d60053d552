// Every refused TLS handshake, inbound and outbound, is published once with a
// reason from a closed set (tls/refusals.ts): real sockets, real OpenSSL
// verdicts, certificates minted by the dev CA.
import { once } from 'node:events'
import { connect as http2Connect } from 'node:http2'
import { createServer as createHttpsServer } from 'node:https'
import { type AddressInfo, createServer as createNetServer, connect as netConnect } from 'node:net'
import { connect, createServer as createTlsServer, type TLSSocket } from 'node:tls'
import { DevCa, DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { Pool } from 'undici'
import { matchId } from 'workload-api-client'
import { WebSocket, WebSocketServer } from 'ws'
import { parseConfig } from '../src/config/index.ts'
import { Identity } from '../src/identity/identity.ts'
import { httpServerOptions, ProxyListener } from '../src/listener/server.ts'
import { on, type TlsRejectedEvent } from '../src/observe/events.ts'
import { createLogger, subscribeLogs } from '../src/observe/log.ts'
import { Sidecar } from '../src/sidecar.ts'
import { ClientTls } from '../src/tls/client-tls.ts'
import { httpsConnector } from '../src/tls/https-connector.ts'
import { tlsParameters } from '../src/tls/profiles.ts'
import { refusalOfTlsError, TLS_REFUSALS } from '../src/tls/refusals.ts'
import { ServerTls } from '../src/tls/server-tls.ts'

const AGENT = 'spiffe://example.org/agent'
const MCP = 'spiffe://example.org/mcp'
const HOUR = 3600_000
const quick = () => ({ next: () => 50, reset() {} })
const INTERMEDIATE = tlsParameters('intermediate', 'TLSv1.2')

const events: TlsRejectedEvent[] = []
on('tlsRejected', (e) => events.push(e))
const logLines: string[] = []
subscribeLogs(createLogger({ level: 'debug', stream: { write: (l: string) => logLines.push(l) } }))

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** The events published for `listener` from index `from` on, once `n` of them have arrived. */
async function nextEvents(listener: string, from: number, n = 1): Promise<TlsRejectedEvent[]> {
  const mine = () => events.slice(from).filter((e) => e.listener === listener)
  await until(() => mine().length >= n, `${n} refusal event(s) on ${listener}`)
  return mine()
}

async function setup(t: Test, federate?: DevCa) {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp', federatesWith: federate ? ['partner.example'] : [] },
    ],
  })
  t.teardown(() => api.close())
  if (federate) api.setFederatedBundle('partner.example', { x509: federate })
  const agent = Identity.start({ socket: api.endpoint, hint: 'agent', backoff: quick })
  const mcp = Identity.start({ socket: api.endpoint, hint: 'mcp', backoff: quick })
  t.teardown(() => agent.close())
  t.teardown(() => mcp.close())
  await agent.waitReady(5000)
  await mcp.waitReady(5000)
  if (federate) await until(() => mcp.current()?.bundles.get('partner.example') !== undefined, 'federation')
  return { api, agent, mcp }
}

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

/** An inbound listener as the sidecar builds it: https.Server, ProxyListener's answers, ServerTls. */
async function inbound(t: Test, identity: Identity, name: string, handshakeTimeoutMs = 10_000) {
  const tls = new ServerTls(identity, {
    listener: name,
    authorizer: matchId(AGENT),
    params: INTERMEDIATE,
    handshakeTimeoutMs,
  })
  const server = createHttpsServer({ ...httpServerOptions(LIMITS), ...tls.serverOptions() }, (_req, res) =>
    res.end('ok'),
  )
  new ProxyListener(name, 'inbound', server, LIMITS)
  tls.attach(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    tls.close()
    server.closeAllConnections()
    server.close()
  })
  return { server, port: (server.address() as AddressInfo).port }
}

function connectionsOf(server: { getConnections(cb: (err: Error | null, n: number) => void): void }) {
  return new Promise<number>((resolve) => server.getConnections((_e, n) => resolve(n)))
}

function closed(socket: { on(e: 'close', f: () => void): unknown; on(e: 'error', f: () => void): unknown }) {
  return new Promise<void>((resolve) => {
    socket.on('error', () => {})
    socket.on('close', () => resolve())
  })
}

t.test('the reason table maps OpenSSL and Node codes, and nothing else, to the closed set', async (t) => {
  const cases: [{ code?: string }, string | undefined, string][] = [
    [{ code: 'CERT_HAS_EXPIRED' }, undefined, 'CERT_EXPIRED'],
    [{ code: 'CERT_NOT_YET_VALID' }, undefined, 'CERT_NOT_YET_VALID'],
    [{ code: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' }, undefined, 'UNKNOWN_AUTHORITY'],
    [{ code: 'SELF_SIGNED_CERT_IN_CHAIN' }, undefined, 'UNKNOWN_AUTHORITY'],
    [{ code: 'CERT_SIGNATURE_FAILURE' }, undefined, 'BAD_CHAIN'],
    [{ code: 'ERR_TLS_CERT_ALTNAME_INVALID' }, undefined, 'HOSTNAME_MISMATCH'],
    [{ code: 'ERR_TLS_HANDSHAKE_TIMEOUT' }, undefined, 'HANDSHAKE_TIMEOUT'],
    [{ code: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' }, undefined, 'NO_CLIENT_CERTIFICATE'],
    [{ code: 'ERR_SSL_UNSUPPORTED_PROTOCOL' }, undefined, 'PROTOCOL_VERSION'],
    [{ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' }, undefined, 'PROTOCOL_VERSION'],
    [{ code: 'ERR_SSL_NO_SHARED_CIPHER' }, undefined, 'NO_SHARED_CIPHER'],
    [{ code: 'ERR_SSL_HTTP_REQUEST' }, undefined, 'NOT_TLS'],
    [{ code: 'ERR_SSL_NO_APPLICATION_PROTOCOL' }, undefined, 'NO_APPLICATION_PROTOCOL'],
    [{ code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL' }, undefined, 'NO_APPLICATION_PROTOCOL'],
    [{ code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' }, undefined, 'PEER_REFUSED'],
    [{ code: 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE' }, undefined, 'PEER_REFUSED'],
    [{ code: 'ECONNRESET' }, undefined, 'PEER_CLOSED'],
    // A server socket: Node reports "socket hang up" and keeps OpenSSL's verdict on the socket.
    [{ code: 'ECONNRESET' }, 'CERT_HAS_EXPIRED', 'CERT_EXPIRED'],
    [{ code: 'ECONNRESET' }, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNKNOWN_AUTHORITY'],
    [{ code: 'SOMETHING_NEW' }, undefined, 'HANDSHAKE_FAILED'],
    [{}, undefined, 'HANDSHAKE_FAILED'],
  ]
  for (const [err, authorizationError, reason] of cases) {
    const r = refusalOfTlsError(err, authorizationError)
    t.equal(r.reason, reason, `${err.code ?? '(none)'} / ${authorizationError ?? '-'}`)
    t.ok(Object.hasOwn(TLS_REFUSALS, r.reason), 'a reason of the closed set')
  }
})

t.test('[C26] inbound: each refused client is published once, with its reason and code', async (t) => {
  const partner = DevCa.create({ trustDomain: 'partner.example' })
  const { api, mcp } = await setup(t, partner)
  const { server, port } = await inbound(t, mcp, 'in-refusals')
  const ca = api.ca
  const stranger = DevCa.create({ trustDomain: 'example.org' })
  type Svid = { certChainPem: string; keyPem: string } | undefined
  const cases: [string, Svid, string, string][] = [
    [
      'expired',
      ca.issueX509Svid({
        spiffeId: AGENT,
        notBefore: new Date(Date.now() - 2 * HOUR),
        notAfter: new Date(Date.now() - HOUR),
      }),
      'CERT_EXPIRED',
      'SVD_PEER_REJECTED',
    ],
    [
      'not yet valid',
      ca.issueX509Svid({
        spiffeId: AGENT,
        notBefore: new Date(Date.now() + HOUR),
        notAfter: new Date(Date.now() + 2 * HOUR),
      }),
      'CERT_NOT_YET_VALID',
      'SVD_PEER_REJECTED',
    ],
    ['unknown CA', stranger.issueX509Svid({ spiffeId: AGENT }), 'UNKNOWN_AUTHORITY', 'SVD_PEER_REJECTED'],
    ['no client certificate', undefined, 'NO_CLIENT_CERTIFICATE', 'SVD_PEER_REJECTED'],
    [
      'wrong SPIFFE ID',
      ca.issueX509Svid({ spiffeId: 'spiffe://example.org/intruder' }),
      'UNAUTHORIZED',
      'SVD_PEER_REJECTED',
    ],
    ['two URI SANs', ca.issueX509Svid({ uriSans: [AGENT, MCP] }), 'SPIFFE_RULE', 'SVD_PEER_REJECTED'],
    ['CA leaf', ca.issueX509Svid({ spiffeId: AGENT, isCa: true }), 'SPIFFE_RULE', 'SVD_PEER_REJECTED'],
    [
      'an intermediate that is not a CA',
      ca.createIntermediate({ isCa: false }).issueX509Svid({ spiffeId: AGENT }),
      'BAD_CHAIN',
      'SVD_PEER_REJECTED',
    ],
    [
      'cross-trust-domain forgery',
      partner.issueX509Svid({ spiffeId: AGENT }),
      'UNKNOWN_AUTHORITY',
      'SVD_PEER_REJECTED',
    ],
  ]
  for (const [name, svid, reason, code] of cases) {
    const from = events.length
    const socket = connect({
      host: '127.0.0.1',
      port,
      ...(svid === undefined ? {} : { key: svid.keyPem, cert: svid.certChainPem }),
      ca: api.bundlePem(),
      checkServerIdentity: () => undefined,
    })
    socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'))
    let answered = ''
    socket.on('data', (d) => {
      answered += d
    })
    await closed(socket)
    t.equal(answered, '', `${name}: no answer`)
    const got = await nextEvents('in-refusals', from)
    t.match(got, [{ direction: 'inbound', reason, code }], `${name}: ${reason}`)
  }

  const from = events.length
  const plain = netConnect(port, '127.0.0.1', () => plain.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'))
  await closed(plain)
  t.match(await nextEvents('in-refusals', from), [{ reason: 'NOT_TLS', code: 'SVD_TLS_HANDSHAKE_FAILED' }])

  const from2 = events.length
  const hangUp = netConnect(port, '127.0.0.1', () => hangUp.end())
  await closed(hangUp)
  t.match(await nextEvents('in-refusals', from2), [
    { reason: 'PEER_CLOSED', code: 'SVD_TLS_HANDSHAKE_FAILED' },
  ])
  t.match(logLines.at(-1), /"level":"debug"/, 'a hang-up (a TCP health check) is logged at debug only')

  const total = events.filter((e) => e.listener === 'in-refusals').length
  t.equal(total, cases.length + 2, 'one event per refused connection, never two')
  const lines = logLines.filter((l) => l.includes('"listener":"in-refusals"'))
  t.equal(lines.length, total, 'one log line per refused connection')
  t.ok(
    lines.every(
      (l) => /"msg":"TLS handshake refused: /.test(l) && !/ECONNRESET"/.test(l.split('"detail"')[0] ?? ''),
    ),
    'logged by reason, never as a bare ECONNRESET',
  )
  t.equal(await connectionsOf(server), 0, 'no refused socket left open')
})

t.test('inbound: a handshake that never finishes is cut at handshakeTimeout and counted', async (t) => {
  const { mcp } = await setup(t)
  const { server, port } = await inbound(t, mcp, 'in-timeout', 300)
  const from = events.length
  // Connects and sends nothing; the server, not this client, must end it.
  const idle = netConnect(port, '127.0.0.1')
  await closed(idle)
  t.match(await nextEvents('in-timeout', from), [
    { reason: 'HANDSHAKE_TIMEOUT', code: 'SVD_TLS_HANDSHAKE_FAILED' },
  ])
  await until(async () => (await connectionsOf(server)) === 0, 'the server to hold no connection')
  t.pass('the socket is gone on the server side too')
})

t.test('inbound with no SVID of its own: NO_LOCAL_SVID, and the log blames us, not the peer', async (t) => {
  const { api, mcp } = await setup(t)
  const { port } = await inbound(t, mcp, 'in-nosvid')
  const good = api.ca.issueX509Svid({ spiffeId: AGENT })
  api.removeWorkload(MCP)
  await until(() => !mcp.ready, 'the server identity to go')
  const from = events.length
  const socket = connect({
    host: '127.0.0.1',
    port,
    key: good.keyPem,
    cert: good.certChainPem,
    ca: api.bundlePem(),
    checkServerIdentity: () => undefined,
  })
  await closed(socket)
  t.match(await nextEvents('in-nosvid', from), [
    { reason: 'NO_LOCAL_SVID', code: 'SVD_IDENTITY_UNAVAILABLE' },
  ])
  const line = logLines.find((l) => l.includes('"listener":"in-nosvid"')) ?? ''
  t.match(line, /this sidecar holds no valid X\.509-SVID/)
  t.notMatch(line, /peer rejected/i)
})

/** A TLS server presenting `svid`, counting connections that completed a handshake. */
async function tlsPeer(t: Test, svid: { certChainPem: string; keyPem: string }) {
  const server = createTlsServer({ key: svid.keyPem, cert: svid.certChainPem }, (s: TLSSocket) => {
    s.on('error', () => {})
    s.end()
  })
  let connections = 0
  server.on('connection', () => connections++)
  server.on('tlsClientError', () => {})
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return { port: (server.address() as AddressInfo).port, connections: () => connections }
}

t.test('outbound to a peer sidecar: OpenSSL refusals are published with their reason', async (t) => {
  const { api, agent } = await setup(t)
  const stranger = DevCa.create({ trustDomain: 'example.org' })
  const cases: [string, { certChainPem: string; keyPem: string }, string, string][] = [
    [
      'expired',
      api.ca.issueX509Svid({
        spiffeId: MCP,
        notBefore: new Date(Date.now() - 2 * HOUR),
        notAfter: new Date(Date.now() - HOUR),
      }),
      'CERT_EXPIRED',
      'SVD_UPSTREAM_TLS_FAILED',
    ],
    ['unknown CA', stranger.issueX509Svid({ spiffeId: MCP }), 'UNKNOWN_AUTHORITY', 'SVD_UPSTREAM_TLS_FAILED'],
    [
      'wrong SPIFFE ID',
      api.ca.issueX509Svid({ spiffeId: AGENT }),
      'UNAUTHORIZED',
      'SVD_UPSTREAM_PEER_REJECTED',
    ],
  ]
  for (const [name, svid, reason, code] of cases) {
    const peer = await tlsPeer(t, svid)
    const client = new ClientTls(agent, {
      upstream: `out-${reason.toLowerCase()}`,
      authorizer: matchId(MCP),
      params: INTERMEDIATE,
      connectTimeoutMs: 5000,
    })
    const from = events.length
    const err = await new Promise<Error & { code?: string; reason?: string }>((resolve) =>
      client.connect({ hostname: '127.0.0.1', port: peer.port }, (e, s) => {
        s?.destroy()
        resolve(e ?? new Error('connected'))
      }),
    )
    t.match(err, { code, reason }, `${name}: the error says why`)
    t.match(await nextEvents(`out-${reason.toLowerCase()}`, from), [{ direction: 'outbound', reason, code }])
  }

  // A server that accepts TCP and never answers the ClientHello.
  const silent = createNetServer(() => {})
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => silent.close())
  const slow = new ClientTls(agent, {
    upstream: 'out-silent',
    authorizer: matchId(MCP),
    params: INTERMEDIATE,
    connectTimeoutMs: 300,
  })
  const before = events.length
  const timedOut = await new Promise<Error>((resolve) =>
    slow.connect({ hostname: '127.0.0.1', port: (silent.address() as AddressInfo).port }, (e, s) => {
      s?.destroy()
      resolve(e ?? new Error('connected'))
    }),
  )
  t.match(timedOut, { code: 'SVD_UPSTREAM_CONNECT_TIMEOUT', reason: 'HANDSHAKE_TIMEOUT' })
  t.match(await nextEvents('out-silent', before), [
    { reason: 'HANDSHAKE_TIMEOUT', code: 'SVD_UPSTREAM_CONNECT_TIMEOUT' },
  ])

  api.removeWorkload(AGENT)
  await until(() => !agent.ready, 'the agent identity to go')
  const peer = await tlsPeer(t, api.ca.issueX509Svid({ spiffeId: MCP }))
  const client = new ClientTls(agent, {
    upstream: 'out-nosvid',
    authorizer: matchId(MCP),
    params: INTERMEDIATE,
    connectTimeoutMs: 5000,
  })
  const from = events.length
  await new Promise<void>((resolve) =>
    client.connect({ hostname: '127.0.0.1', port: peer.port }, () => resolve()),
  )
  t.match(await nextEvents('out-nosvid', from), [
    { reason: 'NO_LOCAL_SVID', code: 'SVD_IDENTITY_UNAVAILABLE' },
  ])
  t.equal(peer.connections(), 0, 'no connection was even attempted')
})

t.test('outbound to an HTTPS API: expired, unknown-CA and wrong-host upstreams are published', async (t) => {
  const { api, agent } = await setup(t)
  const cases: [string, { certChainPem: string; keyPem: string }, string | undefined, string][] = [
    [
      'expired',
      api.ca.issueX509Svid({
        spiffeId: MCP,
        dnsNames: ['api.example'],
        notBefore: new Date(Date.now() - 2 * HOUR),
        notAfter: new Date(Date.now() - HOUR),
      }),
      api.bundlePem(),
      'CERT_EXPIRED',
    ],
    ['unknown CA', api.ca.issueX509Svid({ spiffeId: MCP }), undefined, 'UNKNOWN_AUTHORITY'],
    [
      'wrong host',
      api.ca.issueX509Svid({ spiffeId: MCP, dnsNames: ['api.example'] }),
      api.bundlePem(),
      'HOSTNAME_MISMATCH',
    ],
  ]
  for (const [name, svid, ca, reason] of cases) {
    const peer = await tlsPeer(t, svid)
    const upstream = `api-${reason.toLowerCase()}`
    const pool = new Pool(`https://127.0.0.1:${peer.port}`, {
      connect: httpsConnector(agent, {
        upstream,
        params: INTERMEDIATE,
        ...(ca === undefined ? {} : { ca }),
        connectTimeoutMs: 5000,
      }),
    })
    t.teardown(() => pool.destroy())
    const from = events.length
    await t.rejects(pool.request({ path: '/', method: 'GET' }), `${name}: refused`)
    t.match(await nextEvents(upstream, from), [
      { direction: 'outbound', reason, code: 'SVD_UPSTREAM_TLS_FAILED' },
    ])
  }
})

t.test('outbound fails closed for plain HTTPS upstreams too: no SVID, no connection, 503', async (t) => {
  const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: AGENT, hint: 'agent' }] })
  t.teardown(() => api.close())
  const peer = await tlsPeer(t, api.ca.issueX509Svid({ spiffeId: MCP, dnsNames: ['localhost'] }))
  const dir = t.testdir({ 'ca.pem': api.bundlePem() })
  const sidecar = await Sidecar.start(
    parseConfig(
      `workloadApi: { socket: "${api.endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: api }]
upstreams:
  api: { url: "https://127.0.0.1:${peer.port}", caFile: "${dir}/ca.pem" }
`,
      'agent.yaml',
      {},
    ),
    { identity: { backoff: quick }, logger: createLogger({ level: 'error', stream: { write: () => true } }) },
  )
  t.teardown(() => sidecar.destroy())
  await sidecar.identity.waitReady(5000)
  api.removeWorkload(AGENT)
  await until(() => !sidecar.ready, 'the identity to go')
  const out = sidecar.addresses.outbound.egress
  const res = await fetch(`http://127.0.0.1:${out?.port}/v1/models`)
  t.equal(res.status, 503)
  t.equal(res.headers.get('x-svidecar-error'), 'SVD_IDENTITY_UNAVAILABLE')
  t.equal(peer.connections(), 0, 'nothing reached the upstream')
})

t.test('WebSocket to an HTTPS upstream uses its CA file and profile, and counts its refusals', async (t) => {
  const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: AGENT, hint: 'agent' }] })
  t.teardown(() => api.close())
  const hour = HOUR
  const good = api.ca.issueX509Svid({ spiffeId: MCP, dnsNames: ['localhost'] })
  const expired = api.ca.issueX509Svid({
    spiffeId: MCP,
    dnsNames: ['localhost'],
    notBefore: new Date(Date.now() - 2 * hour),
    notAfter: new Date(Date.now() - hour),
  })
  const wssServer = async (svid: { certChainPem: string; keyPem: string }) => {
    const server = createHttpsServer({ key: svid.keyPem, cert: svid.certChainPem })
    const wss = new WebSocketServer({ server })
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo ${m}`)))
    server.on('tlsClientError', () => {})
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => {
      wss.close()
      server.closeAllConnections()
      server.close()
    })
    return (server.address() as AddressInfo).port
  }
  const goodPort = await wssServer(good)
  const expiredPort = await wssServer(expired)
  const dir = t.testdir({ 'ca.pem': api.bundlePem() })
  const sidecar = await Sidecar.start(
    parseConfig(
      `workloadApi: { socket: "${api.endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - { match: { pathPrefix: /good }, upstream: good }
      - { match: { pathPrefix: /expired }, upstream: ws-expired }
upstreams:
  good: { url: "https://localhost:${goodPort}", caFile: "${dir}/ca.pem" }
  ws-expired: { url: "https://localhost:${expiredPort}", caFile: "${dir}/ca.pem" }
`,
      'agent.yaml',
      {},
    ),
    { identity: { backoff: quick }, logger: createLogger({ level: 'error', stream: { write: () => true } }) },
  )
  t.teardown(() => sidecar.destroy())
  await sidecar.identity.waitReady(5000)
  const out = `ws://127.0.0.1:${sidecar.addresses.outbound.egress?.port}`

  const ws = new WebSocket(`${out}/good`)
  await once(ws, 'open')
  ws.send('hi')
  const [reply] = await once(ws, 'message')
  t.equal(
    String(reply),
    'echo hi',
    'the dev CA from caFile verified the upstream (the system roots would not)',
  )
  ws.close()

  const from = events.length
  const refused = new WebSocket(`${out}/expired`)
  refused.on('error', () => {})
  const [, res] = (await once(refused, 'unexpected-response')) as [
    unknown,
    { statusCode: number; headers: Record<string, string> },
  ]
  t.equal(res.statusCode, 502)
  t.equal(res.headers['x-svidecar-error'], 'SVD_UPSTREAM_TLS_FAILED')
  t.match(await nextEvents('ws-expired', from), [
    { direction: 'outbound', reason: 'CERT_EXPIRED', code: 'SVD_UPSTREAM_TLS_FAILED' },
  ])
})

t.test(
  'an HTTP/2-only client is refused at the handshake (ALPN), counted as NO_APPLICATION_PROTOCOL',
  async (t) => {
    const { agent, mcp } = await setup(t)
    const { port } = await inbound(t, mcp, 'in-alpn')
    const own = agent.current()
    if (own === undefined) throw new Error('no SVID')
    const from = events.length
    // node:http2's client offers h2 alone, as gRPC clients do; the listener speaks http/1.1 only.
    const session = http2Connect(`https://127.0.0.1:${port}`, {
      key: own.keyPem,
      cert: own.certChainPem,
      rejectUnauthorized: false,
    })
    const [err] = (await once(session, 'error')) as [Error & { code?: string }]
    t.equal(err.code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', 'the client got the RFC 7301 alert')
    t.match(await nextEvents('in-alpn', from), [
      { direction: 'inbound', reason: 'NO_APPLICATION_PROTOCOL', code: 'SVD_TLS_HANDSHAKE_FAILED' },
    ])
  },
)
