// SVIDs issued through intermediate CAs (SPIRE with an UpstreamAuthority, nested SPIRE), inbound and
// outbound over real sockets, and what Node 24 shows of a peer's chain on each side.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import {
  connect,
  createServer,
  type DetailedPeerCertificate,
  type Server,
  type TLSSocket,
  type TlsOptions,
} from 'node:tls'
import { DevCa, DevWorkloadApi, type DevWorkloadApiOptions } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { matchId, matchMemberOf, matchOneOf } from 'workload-api-client'
import { Identity } from '../src/identity/identity.ts'
import { on } from '../src/observe/events.ts'
import { ClientTls } from '../src/tls/client-tls.ts'
import { peerChain } from '../src/tls/peer.ts'
import { tlsParameters } from '../src/tls/profiles.ts'
import { peerIdOf, ServerTls } from '../src/tls/server-tls.ts'

const AGENT = 'spiffe://example.org/agent'
const MCP = 'spiffe://example.org/mcp'
const PARTNER = 'spiffe://partner.example/agent'
const quick = () => ({ next: () => 50, reset() {} })

async function identityOf(t: Test, api: DevWorkloadApi, hint: string): Promise<Identity> {
  const identity = Identity.start({ socket: api.endpoint, hint, backoff: quick })
  t.teardown(() => identity.close())
  await identity.waitReady(5000)
  return identity
}

async function devApi(t: Test, opts: DevWorkloadApiOptions): Promise<DevWorkloadApi> {
  const api = await DevWorkloadApi.start(opts)
  t.teardown(() => api.close())
  return api
}

/** A ServerTls listener answering each verified connection with the peer ID it saw. */
async function spiffeServer(t: Test, identity: Identity, allowed = matchId(AGENT)) {
  const tls = new ServerTls(identity, {
    listener: 'chain',
    authorizer: allowed,
    params: tlsParameters('intermediate', 'TLSv1.2'),
    handshakeTimeoutMs: 10_000,
  })
  const server: Server = createServer(tls.serverOptions())
  tls.attach(server)
  const received: string[] = []
  server.on('secureConnection', (socket: TLSSocket) => {
    socket.on('data', (d) => received.push(d.toString()))
    socket.on('error', () => {})
    if (!socket.destroyed) socket.write(`hello ${peerIdOf(socket)?.toString()}\n`)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    tls.close()
    server.close()
  })
  return { port: (server.address() as AddressInfo).port, received }
}

/** A plain TLS server presenting `svid` (no SPIFFE logic), for outbound tests. */
async function plainServer(t: Test, opts: TlsOptions) {
  const server = createServer(opts, (socket) => {
    socket.on('error', () => {})
    socket.end('hi\n')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return (server.address() as AddressInfo).port
}

function clientTls(identity: Identity, expected: string): ClientTls {
  return new ClientTls(identity, {
    upstream: 'chain',
    authorizer: matchId(expected),
    params: tlsParameters('intermediate', 'TLSv1.2'),
    connectTimeoutMs: 5000,
  })
}

function clientConnect(tls: ClientTls, port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    tls.connect({ hostname: '127.0.0.1', port }, (err, socket) =>
      err ? reject(err) : resolve(socket as TLSSocket),
    )
  })
}

function firstLine(socket: TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let buf = ''
    socket.on('data', (d) => {
      buf += d.toString()
      if (buf.includes('\n')) resolve(buf.split('\n')[0] as string)
    })
    socket.on('error', () => resolve(`error:${buf}`))
    socket.on('close', () => resolve(`closed:${buf}`))
  })
}

/** Connects to a ServerTls listener with a raw client presenting `svid`; resolves the first line. */
async function rawClient(
  t: Test,
  port: number,
  svid: { keyPem: string; certChainPem: string },
  ca: string,
  extra: object = {},
): Promise<string> {
  const socket = connect({
    host: '127.0.0.1',
    port,
    key: svid.keyPem,
    cert: svid.certChainPem,
    ca,
    checkServerIdentity: () => undefined,
    ...extra,
  })
  t.teardown(() => socket.destroy())
  socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\n\r\n'))
  return firstLine(socket)
}

/** The rule each inbound refusal names: the event's `detail` (its `reason` is the coarse metric label). */
function inboundRejections(t: Test): string[] {
  const reasons: string[] = []
  t.teardown(
    on('tlsRejected', (e) => {
      if (e.direction === 'inbound') reasons.push(e.detail?.split('/').at(-1) ?? e.reason)
    }),
  )
  return reasons
}

/** Names of the certificates getPeerCertificate(true) links, leaf first, stopping at a self-loop. */
function linked(cert: DetailedPeerCertificate | undefined, names: Map<string, string>): string[] {
  const out: string[] = []
  let cur = cert
  for (let i = 0; i < 8 && cur?.raw; i++) {
    out.push(names.get(cur.fingerprint256) ?? '?')
    if (cur.issuerCertificate === cur) break
    cur = cur.issuerCertificate
  }
  return out
}

t.test('Node 24: what each socket shows of a peer chain with two intermediates', async (t) => {
  const ca = DevCa.create({ trustDomain: 'example.org', intermediates: 2 })
  const client = ca.issueX509Svid({ spiffeId: AGENT })
  const server = ca.issueX509Svid({ spiffeId: MCP })
  const names = new Map<string, string>([
    [ca.root.fingerprint256, 'root'],
    [(server.certificates[1] as { fingerprint256: string }).fingerprint256, 'int2'],
    [(server.certificates[2] as { fingerprint256: string }).fingerprint256, 'int1'],
    [(client.certificates[0] as { fingerprint256: string }).fingerprint256, 'clientLeaf'],
    [(server.certificates[0] as { fingerprint256: string }).fingerprint256, 'serverLeaf'],
  ])

  const probe = async (serverCa: string[]) => {
    let seen:
      | { authorized: boolean; detailed: string[]; x509: string[]; chain: number; after: number }
      | undefined
    const s = createServer({
      key: server.keyPem,
      cert: server.certChainPem,
      ca: serverCa,
      requestCert: true,
      rejectUnauthorized: false,
    })
    s.on('secureConnection', (socket: TLSSocket) => {
      const detailed = linked(socket.getPeerCertificate(true), names)
      const chain = peerChain(socket).length
      const x509: string[] = []
      for (
        let x = socket.getPeerX509Certificate();
        x !== undefined && x509.length < 8;
        x = x.issuerCertificate
      )
        x509.push(names.get(x.fingerprint256) ?? '?')
      // getPeerX509Certificate() took the chain out of OpenSSL's stack: what the bug does on verified sockets.
      const after = peerChain(socket).length
      seen = { authorized: socket.authorized, detailed, x509, chain, after }
      socket.end('x\n')
    })
    s.listen(0, '127.0.0.1')
    await once(s, 'listening')
    t.teardown(() => s.close())
    const c = connect({
      host: '127.0.0.1',
      port: (s.address() as AddressInfo).port,
      key: client.keyPem,
      cert: client.certChainPem,
      ca: ca.bundlePem(),
      checkServerIdentity: () => undefined,
    })
    t.teardown(() => c.destroy())
    await once(c, 'secureConnect')
    const clientSide = { detailed: linked(c.getPeerCertificate(true), names), chain: peerChain(c).length }
    const deadline = Date.now() + 5000
    while (seen === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    return { server: seen, client: clientSide }
  }

  const verified = await probe([ca.bundlePem()])
  t.equal(verified.server?.authorized, true)
  // nodejs/node#65579: once OpenSSL verified the client, Node's own onServerSocketSecure() walks the chain with
  // getPeerX509Certificate() and takes the intermediates out of OpenSSL's stack. If this starts failing, Node
  // fixed it; peer.ts does not depend on it either way.
  t.same(
    verified.server?.detailed,
    ['clientLeaf'],
    'verified server socket: getPeerCertificate(true) has the leaf only',
  )
  t.same(verified.server?.x509, ['clientLeaf'], 'verified server socket: so has getPeerX509Certificate()')
  t.same(
    verified.client.detailed,
    ['serverLeaf', 'int2', 'int1', 'root'],
    'client socket: presented chain, then the root from our store',
  )
  t.equal(verified.client.chain, 3, 'peerChain on the client: leaf + 2 intermediates, no root')

  // What ServerTls does: OpenSSL has no roots, verification fails, Node leaves the stack alone.
  const unverified = await probe([])
  t.equal(unverified.server?.authorized, false)
  t.same(
    unverified.server?.detailed,
    ['clientLeaf', 'int2', 'int1'],
    'unverified server socket: the presented chain',
  )
  t.equal(unverified.server?.chain, 3, 'peerChain on the server: leaf + 2 intermediates')
  t.same(unverified.server?.x509, ['clientLeaf', 'int2', 'int1'], 'getPeerX509Certificate() links them once')
  t.equal(unverified.server?.after, 1, 'and leaves the leaf alone in the stack (the mechanism of #65579)')
})

for (const depth of [1, 2]) {
  t.test(`mTLS both ways with SVIDs ${depth} intermediate(s) below the root`, async (t) => {
    const api = await devApi(t, {
      intermediates: depth,
      workloads: [
        { spiffeId: AGENT, hint: 'agent' },
        { spiffeId: MCP, hint: 'mcp' },
      ],
    })
    const agent = await identityOf(t, api, 'agent')
    const mcp = await identityOf(t, api, 'mcp')
    const pems = (agent.require().certChainPem.match(/BEGIN CERTIFICATE/g) ?? []).length
    t.equal(pems, depth + 1, 'the Workload API delivered leaf + intermediates and we present them all')
    const { port } = await spiffeServer(t, mcp)
    const client = clientTls(agent, MCP)
    const socket = await clientConnect(client, port)
    t.teardown(() => socket.destroy())
    t.equal(peerChain(socket).length, depth + 1, 'the server sidecar sent its intermediates')
    t.equal(await firstLine(socket), `hello ${AGENT}`, 'inbound accepted the client chain')

    // Resumed sessions show no chain; they are verified against the chain seen when they were established.
    let again = await clientConnect(client, port)
    for (let i = 0; i < 3 && !again.isSessionReused(); i++) {
      await firstLine(again)
      again.destroy()
      again = await clientConnect(client, port)
    }
    t.teardown(() => again.destroy())
    t.equal(again.isSessionReused(), true, 'the session resumed')
    t.equal(await firstLine(again), `hello ${AGENT}`, 'and was verified on both sides')
  })
}

t.test('a federated trust domain whose SVIDs come through an intermediate, both ways', async (t) => {
  const partner = await devApi(t, {
    trustDomain: 'partner.example',
    intermediates: 1,
    workloads: [{ spiffeId: PARTNER, hint: 'partner', federatesWith: ['example.org'] }],
  })
  const api = await devApi(t, {
    intermediates: 1,
    workloads: [{ spiffeId: MCP, hint: 'mcp', federatesWith: ['partner.example'] }],
  })
  partner.setFederatedBundle('example.org', { x509: api.ca })
  api.setFederatedBundle('partner.example', { x509: partner.ca })
  const mcp = await identityOf(t, api, 'mcp')
  const agent = await identityOf(t, partner, 'partner')
  const { port } = await spiffeServer(t, mcp, matchMemberOf('partner.example'))
  const socket = await clientConnect(clientTls(agent, MCP), port)
  t.teardown(() => socket.destroy())
  t.equal(await firstLine(socket), `hello ${PARTNER}`)
})

t.test('an intermediate of trust domain B under A’s root is refused, inbound and outbound', async (t) => {
  // A = example.org, B = partner.example; both bundles are held, so OpenSSL's union of roots alone would accept.
  const rootA = DevCa.create({ trustDomain: 'example.org' })
  const partnerCa = DevCa.create({ trustDomain: 'partner.example', intermediates: 1 })
  const api = await devApi(t, {
    ca: rootA.createIntermediate(),
    workloads: [
      { spiffeId: MCP, hint: 'mcp', federatesWith: ['partner.example'] },
      { spiffeId: AGENT, hint: 'agent', federatesWith: ['partner.example'] },
    ],
  })
  api.setFederatedBundle('partner.example', { x509: partnerCa })
  const mcp = await identityOf(t, api, 'mcp')
  const agent = await identityOf(t, api, 'agent')
  const forgedB = rootA.createIntermediate({ trustDomain: 'partner.example' })
  const forged = forgedB.issueX509Svid({ spiffeId: PARTNER })

  // Inbound: a client claiming B with B's "intermediate" signed by A's root.
  const reasons = inboundRejections(t)
  const { port, received } = await spiffeServer(t, mcp, matchMemberOf('partner.example'))
  const allRoots = `${rootA.bundlePem()}${partnerCa.bundlePem()}`
  t.notMatch(await rawClient(t, port, forged, allRoots), /^hello/, 'inbound refused')
  t.same(received, [], 'no byte reached the application')
  t.same(reasons, ['UNKNOWN_AUTHORITY'])
  // The genuine B chain on the same listener passes, so the refusal is about the anchor.
  const genuine = partnerCa.issueX509Svid({ spiffeId: PARTNER })
  t.equal(await rawClient(t, port, genuine, allRoots), `hello ${PARTNER}`)

  // Outbound: a server presenting the same forged chain.
  const serverPort = await plainServer(t, { key: forged.keyPem, cert: forged.certChainPem })
  await t.rejects(clientConnect(clientTls(agent, PARTNER), serverPort), {
    code: 'SVD_UPSTREAM_PEER_REJECTED',
    reason: 'UNKNOWN_AUTHORITY',
  })
})

t.test('checks OpenSSL made on client chains stay, each with its reason', async (t) => {
  const api = await devApi(t, {
    intermediates: 1,
    workloads: [{ spiffeId: MCP, hint: 'mcp' }],
  })
  const mcp = await identityOf(t, api, 'mcp')
  const reasons = inboundRejections(t)
  const { port, received } = await spiffeServer(t, mcp)
  const ca = api.ca
  const bundle = api.bundlePem()
  const cases: [string, string, ReturnType<DevCa['issueX509Svid']>, object?][] = [
    [
      'EKU without clientAuth',
      'EKU_MISMATCH',
      ca.issueX509Svid({ spiffeId: AGENT, extKeyUsage: ['serverAuth'] }),
    ],
    [
      'keyUsage without digitalSignature or keyAgreement',
      'KEY_USAGE_MISMATCH',
      ca.issueX509Svid({ spiffeId: AGENT, keyUsage: { digitalSignature: false, keyAgreement: false } }),
    ],
    [
      // Node links the presented chain with X509_check_issued, so this leaf arrives without its intermediate;
      // workload-api-client/test/tls-chain-policy.test.ts covers ISSUER_MISMATCH for a chain that does arrive linked.
      'authority key ID not the signer’s',
      'UNKNOWN_AUTHORITY',
      ca.issueX509Svid({ spiffeId: AGENT, authorityKeyId: Buffer.alloc(20, 7) }),
    ],
    [
      'SHA-1 signature',
      'WEAK_SIGNATURE',
      ca.issueX509Svid({ spiffeId: AGENT, sha1Signature: true }),
      { ciphers: 'DEFAULT:@SECLEVEL=0' },
    ],
    [
      'RSA-1024 key',
      'WEAK_KEY',
      ca.issueX509Svid({ spiffeId: AGENT, keyType: 'rsa-1024' }),
      { ciphers: 'DEFAULT:@SECLEVEL=0' },
    ],
  ]
  for (const [name, reason, svid, extra] of cases) {
    reasons.length = 0
    t.notMatch(await rawClient(t, port, svid, bundle, extra), /^hello/, `${name}: refused`)
    t.same(reasons, [reason], `${name}: ${reason}`)
  }
  t.same(received, [], 'no byte reached the application')
  t.equal(await rawClient(t, port, ca.issueX509Svid({ spiffeId: AGENT }), bundle), `hello ${AGENT}`)
})

t.test('signing certificates’ SPIFFE IDs: a leaf’s issuer must name the leaf’s trust domain', async (t) => {
  const rootA = DevCa.create({ trustDomain: 'example.org' })
  const api = await devApi(t, {
    ca: rootA.createIntermediate(),
    workloads: [
      { spiffeId: MCP, hint: 'mcp', federatesWith: ['partner.example'] },
      { spiffeId: AGENT, hint: 'agent' },
    ],
  })
  // partner.example's bundle is A's root: one upstream CA serving two trust domains.
  api.setFederatedBundle('partner.example', { x509: Buffer.from(rootA.root.raw) })
  const mcp = await identityOf(t, api, 'mcp')
  const agent = await identityOf(t, api, 'agent')
  const reasons = inboundRejections(t)
  const { port, received } = await spiffeServer(t, mcp, matchOneOf(AGENT, PARTNER))
  const bundle = rootA.bundlePem()

  // A's leaf from an intermediate that names B: A's root signed it, path validation alone accepts it.
  const namesB = rootA.createIntermediate({ trustDomain: 'partner.example' })
  const crossed = namesB.issueX509Svid({ spiffeId: AGENT })
  t.notMatch(await rawClient(t, port, crossed, bundle), /^hello/, 'inbound refused')
  t.same(reasons.splice(0), ['SIGNER_TRUST_DOMAIN_MISMATCH'])
  const serverPort = await plainServer(t, { key: crossed.keyPem, cert: crossed.certChainPem })
  await t.rejects(clientConnect(clientTls(agent, AGENT), serverPort), {
    code: 'SVD_UPSTREAM_PEER_REJECTED',
    reason: 'SIGNER_TRUST_DOMAIN_MISMATCH',
  })

  // A signing certificate whose SPIFFE ID has a path names a workload, not a trust domain.
  const withPath = rootA.createIntermediate({ uriSans: ['spiffe://example.org/ca'] })
  t.notMatch(await rawClient(t, port, withPath.issueX509Svid({ spiffeId: AGENT }), bundle), /^hello/)
  t.same(reasons.splice(0), ['SIGNER_SPIFFE_ID'])
  t.same(received, [], 'no byte reached the application')

  // Still accepted: an intermediate without a SPIFFE ID (a corporate CA), and A's intermediate signing
  // B's intermediate that issues B's leaf, anchored in B's bundle.
  const plain = rootA.createIntermediate({ uriSans: [] })
  t.equal(await rawClient(t, port, plain.issueX509Svid({ spiffeId: AGENT }), bundle), `hello ${AGENT}`)
  const nested = rootA.createIntermediate().createIntermediate({ trustDomain: 'partner.example' })
  t.equal(await rawClient(t, port, nested.issueX509Svid({ spiffeId: PARTNER }), bundle), `hello ${PARTNER}`)
  t.same(reasons, [])
})
