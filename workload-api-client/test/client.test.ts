import { join } from 'node:path'
import { Client, credentials, Metadata, status } from '@grpc/grpc-js'
import { DevCa, DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { JwtSource, TrustDomain, WorkloadApiClient, X509Source } from '../src/index.ts'
import { type MessageInit, WORKLOAD_API_SERVICE, type X509SVIDResponse } from '../src/wire.ts'

type X509SvidResponse = MessageInit<X509SVIDResponse>
type X509SvidMessage = NonNullable<X509SvidResponse['svids']>[number]

import { ScriptedServer } from './helpers/scripted-server.ts'
import { socketDir } from './helpers/tmp.ts'
import { fastBackoff, waitFor } from './helpers/wait.ts'

const TD = 'example.org'
const AGENT = 'spiffe://example.org/agent'
const TOOL = 'spiffe://example.org/tool'

async function devApi(t: Test, opts: Parameters<typeof DevWorkloadApi.start>[0] = {}) {
  const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: AGENT, hint: 'agent' }], ...opts })
  t.teardown(() => api.close())
  return api
}

function source(t: Test, address: string, opts: ConstructorParameters<typeof X509Source>[0] = {}) {
  const backoff = fastBackoff()
  const s = new X509Source({ address, backoff: () => backoff, ...opts })
  t.teardown(() => s.close())
  return { source: s, backoff }
}

t.test(
  '[C1] every call carries workload.spiffe.io: true exactly once; a call without it is refused',
  async (t) => {
    const server = await ScriptedServer.start(socketDir(t))
    t.teardown(() => server.close())
    const client = new WorkloadApiClient({ address: server.endpoint })
    t.teardown(() => client.close())
    await t.rejects(client.fetchX509Context({ timeoutMs: 200 }), { code: 'SPIFFE_WLAPI_TIMEOUT' })
    await t.rejects(client.fetchJwtSvid({ audience: 'a' }), { code: 'SPIFFE_WLAPI_UNIMPLEMENTED' })
    await t.rejects(client.validateJwtSvid('x.y.z', 'a'), { code: 'SPIFFE_WLAPI_UNIMPLEMENTED' })
    for (const m of ['FetchX509SVID', 'FetchJWTSVID', 'ValidateJWTSVID'])
      t.same(server.headerValues(m), [['true']], m)

    // The dev server (like SPIRE) refuses a call that lacks the header.
    const api = await devApi(t)
    const raw = new Client(`unix:${api.socketPath}`, credentials.createInsecure())
    t.teardown(() => raw.close())
    const def = WORKLOAD_API_SERVICE.FetchX509SVID
    const code = await new Promise<number>((resolve) => {
      const call = raw.makeServerStreamRequest(
        def.path,
        def.requestSerialize as (v: object) => Buffer,
        def.responseDeserialize as (b: Buffer) => unknown,
        {},
        new Metadata(),
      )
      call.on('data', () => resolve(-1))
      call.on('error', (err: { code: number }) => resolve(err.code))
    })
    t.equal(code, status.INVALID_ARGUMENT)
  },
)

t.test('fetches the X.509 context, bundles and JWT material from the dev Workload API', async (t) => {
  const api = await devApi(t)
  const client = new WorkloadApiClient({ address: api.endpoint })
  t.teardown(() => client.close())
  const ctx = await client.fetchX509Context()
  t.equal(ctx.svids.length, 1)
  t.equal(ctx.svids[0]?.id.toString(), AGENT)
  t.equal(ctx.svids[0]?.hint, 'agent')
  t.ok(ctx.bundles.get(TD)?.hasAuthority(api.ca.root))
  const x509Bundles = await client.fetchX509Bundles()
  t.ok(x509Bundles.get(TD)?.equals(ctx.bundles.get(TD)))
  const jwtBundles = await client.fetchJwtBundles()
  t.ok(jwtBundles.get(TD)?.findAuthority(api.jwtIssuer.kid))
  const jwt = await client.fetchJwtSvid({ audience: ['mcp', 'llm'] })
  t.equal(jwt.id.toString(), AGENT)
  t.same([...jwt.audience].sort(), ['llm', 'mcp'])
  const validated = await client.validateJwtSvid(jwt.token, 'mcp')
  t.equal(validated.id.toString(), AGENT)
  await t.rejects(client.validateJwtSvid(jwt.token, 'someone-else'), {
    code: 'SPIFFE_WLAPI_INVALID_ARGUMENT',
  })
})

t.test('[C12] SPIFFE_ENDPOINT_SOCKET is used when no address is given', async (t) => {
  const api = await devApi(t)
  const client = new WorkloadApiClient({ env: { SPIFFE_ENDPOINT_SOCKET: api.endpoint } })
  t.teardown(() => client.close())
  t.equal((await client.fetchX509Context()).svids[0]?.id.toString(), AGENT)
  t.throws(() => new WorkloadApiClient({ env: {} }), { code: 'SPIFFE_WLAPI_ADDRESS_INVALID' })
  t.throws(() => new WorkloadApiClient({ address: 'unix://tmp/agent.sock' }), {
    code: 'SPIFFE_WLAPI_ADDRESS_INVALID',
  })
})

t.test('[C2] INVALID_ARGUMENT on a watch is fatal: no retries, a configuration error', async (t) => {
  const server = await ScriptedServer.start(socketDir(t))
  t.teardown(() => server.close())
  server.script('FetchX509SVID', {
    messages: [],
    end: { code: status.INVALID_ARGUMENT, details: 'security header missing from request' },
  })
  const { source: s, backoff } = source(t, server.endpoint)
  await t.rejects(s.waitReady({ timeoutMs: 5000 }), { code: 'SPIFFE_WLAPI_INVALID_ARGUMENT' })
  t.equal(s.status, 'failed')
  t.equal(server.callCount('FetchX509SVID'), 1)
  t.equal(backoff.waits, 0)
})

t.test(
  '[C3] PERMISSION_DENIED at start: backoff retries, not ready, then ready once an identity exists',
  async (t) => {
    const api = await devApi(t, { workloads: [] })
    const { source: s, backoff } = source(t, api.endpoint)
    await waitFor(() => backoff.waits >= 2, 'two backoff waits')
    t.equal(s.ready, false)
    t.equal(s.lastError?.code, 'SPIFFE_WLAPI_NO_IDENTITY')
    api.addWorkload({ spiffeId: AGENT })
    await s.waitReady({ timeoutMs: 5000 })
    t.equal(s.getX509Svid().id.toString(), AGENT)
  },
)

t.test('[C4] a missing socket is retried until the Workload API appears', async (t) => {
  const socketPath = join(socketDir(t), 'later.sock')
  const { source: s, backoff } = source(t, `unix://${socketPath}`)
  await waitFor(() => backoff.waits >= 1, 'a failed attempt')
  t.equal(s.lastError?.code, 'SPIFFE_WLAPI_UNAVAILABLE')
  // The message names the socket's error, without grpc-js's empty DNS "Resolution note".
  t.match(s.lastError?.message, /ENOENT/)
  t.notMatch(s.lastError?.message, /Resolution note/)
  await devApi(t, { socketPath })
  await s.waitReady({ timeoutMs: 10_000 })
  t.equal(s.getX509Svid().id.toString(), AGENT)
})

t.test('[C5] a stream that ends with status OK is reopened', async (t) => {
  const ca = DevCa.create({ trustDomain: TD })
  const server = await ScriptedServer.start(socketDir(t))
  t.teardown(() => server.close())
  const first = ca.issueX509Svid({ spiffeId: AGENT })
  const second = ca.issueX509Svid({ spiffeId: AGENT })
  server.script<X509SvidResponse>(
    'FetchX509SVID',
    { messages: [x509Message(first, ca)], end: 'ok' },
    { messages: [x509Message(second, ca)], end: 'hang' },
  )
  const { source: s, backoff } = source(t, server.endpoint)
  await waitFor(
    () => s.svid?.serialNumber === second.certificates[0]?.serialNumber,
    'the second stream message',
  )
  t.equal(server.callCount('FetchX509SVID'), 2)
  // go-spiffe backs off on EOF too; reopening at once spins when a server ends every stream (watch.test.ts).
  t.equal(backoff.waits, 1, 'a clean end is reopened after one backoff step')
})

t.test(
  '[C6] an agent restart: the cached SVID keeps serving, the new one is picked up, backoff resets',
  async (t) => {
    const api = await devApi(t)
    const backoff = fastBackoff()
    // A stream counts as stable at once here; watch.test.ts covers the stable period itself.
    const client = new WorkloadApiClient({ address: api.endpoint, backoff: () => backoff, streamStableMs: 0 })
    t.teardown(() => client.close())
    const s = new X509Source({ client })
    t.teardown(() => s.close())
    await s.waitReady({ timeoutMs: 5000 })
    const before = s.getX509Svid().serialNumber
    await api.stop()
    await waitFor(() => s.lastError?.code === 'SPIFFE_WLAPI_UNAVAILABLE', 'the outage to be seen')
    t.equal(s.ready, true, 'still ready on the cached SVID')
    t.equal(s.getX509Svid().serialNumber, before)
    const resetsBefore = backoff.resets
    api.rotateNow()
    await api.resume()
    await waitFor(() => s.svid?.serialNumber !== before, 'the new SVID after reconnect')
    t.ok(backoff.resets > resetsBefore, 'backoff reset after the first good message')
    t.equal(s.lastError, undefined)
  },
)

t.test(
  '[C7] federated bundles follow each update: removed TDs are dropped, an empty map drops all',
  async (t) => {
    const partner = DevCa.create({ trustDomain: 'partner.example' })
    const other = DevCa.create({ trustDomain: 'other.example' })
    const api = await devApi(t, {
      workloads: [{ spiffeId: AGENT, federatesWith: ['partner.example', 'other.example'] }],
    })
    api.setFederatedBundle('partner.example', { x509: partner })
    api.setFederatedBundle('other.example', { x509: other })
    const { source: s } = source(t, api.endpoint)
    await s.waitReady({ timeoutMs: 5000 })
    await waitFor(() => s.bundles.size === 3, 'three bundles')
    api.setFederatedBundle('partner.example', undefined)
    await waitFor(() => !s.bundles.has('partner.example'), 'partner bundle removal')
    t.ok(s.bundles.has('other.example'))
    api.setFederatedBundle('other.example', undefined)
    await waitFor(() => s.bundles.size === 1, 'only the own bundle')
    t.ok(s.getX509BundleForTrustDomain(TrustDomain.parse(TD)))
  },
)

t.test('[C8] [C9] a malformed update is rejected and the previous state kept', async (t) => {
  const ca = DevCa.create({ trustDomain: TD })
  const good = ca.issueX509Svid({ spiffeId: AGENT })
  const msg = x509Message(good, ca)
  const variants: Array<[string, X509SvidResponse, string]> = [
    ['no svids', { ...msg, svids: [] }, 'MISSING_FIELD'],
    ['empty x509_svid', withSvid(msg, { x509Svid: new Uint8Array(0) }), 'MISSING_FIELD'],
    ['empty key', withSvid(msg, { x509SvidKey: new Uint8Array(0) }), 'MISSING_FIELD'],
    ['empty bundle', withSvid(msg, { bundle: new Uint8Array(0) }), 'MISSING_FIELD'],
    ['empty spiffe_id', withSvid(msg, { spiffeId: '' }), 'MISSING_FIELD'],
    [
      '[C9] key mismatch',
      withSvid(msg, { x509SvidKey: ca.issueX509Svid({ spiffeId: AGENT }).keyDer }),
      'KEY_MISMATCH',
    ],
    ['spiffe_id differs', withSvid(msg, { spiffeId: TOOL }), 'ID_MISMATCH'],
    ['garbage chain', withSvid(msg, { x509Svid: Buffer.from('garbage') }), 'BAD_DER'],
    [
      'bad federated key',
      { ...msg, federatedBundles: { 'spiffe://BAD': ca.bundleDer() } },
      'BAD_TRUST_DOMAIN_CHAR',
    ],
  ]
  const server = await ScriptedServer.start(socketDir(t))
  t.teardown(() => server.close())
  server.script<X509SvidResponse>('FetchX509SVID', {
    messages: [msg, ...variants.map(([, m]) => m)],
    end: 'hang',
  })
  const errors: Array<{ code: string; reason: string | undefined }> = []
  const { source: s } = source(t, server.endpoint)
  s.onError((e) => errors.push({ code: e.code, reason: e.reason }))
  await waitFor(() => errors.length === variants.length, 'every bad message to be reported')
  t.same(
    errors,
    variants.map(([, , reason]) => ({ code: 'SPIFFE_WLAPI_MALFORMED_RESPONSE', reason })),
  )
  t.equal(s.ready, true)
  t.equal(s.getX509Svid().serialNumber, good.certificates[0]?.serialNumber, 'the first good SVID is kept')
})

t.test(
  '[C10] SVIDs are selected by hint; duplicates: first wins; a missing hint is an error, never a fallback',
  async (t) => {
    const api = await devApi(t, {
      workloads: [
        { spiffeId: AGENT, hint: 'agent' },
        { spiffeId: TOOL, hint: 'tool' },
        { spiffeId: 'spiffe://example.org/tool-2', hint: 'tool' },
      ],
    })
    const { source: byHint } = source(t, api.endpoint, { hint: 'tool' })
    await byHint.waitReady({ timeoutMs: 5000 })
    t.equal(byHint.getX509Svid().id.toString(), TOOL)
    const { source: byId } = source(t, api.endpoint, { spiffeId: AGENT })
    await byId.waitReady({ timeoutMs: 5000 })
    t.equal(byId.getX509Svid().id.toString(), AGENT)
    const { source: missing } = source(t, api.endpoint, { hint: 'nope' })
    await t.rejects(missing.waitReady({ timeoutMs: 1000 }), { code: 'SPIFFE_WLAPI_TIMEOUT' })
    t.equal(missing.lastError?.code, 'SPIFFE_WLAPI_SVID_NOT_FOUND')
    t.throws(() => missing.getX509Svid(), { code: 'SPIFFE_WLAPI_NO_IDENTITY' })
    // The hinted entry leaving an update drops that SVID: it is no longer ours.
    api.removeWorkload(AGENT)
    await waitFor(() => !byId.ready, 'the ID-selected source to drop its SVID')
    t.equal(byId.lastError?.code, 'SPIFFE_WLAPI_SVID_NOT_FOUND')
  },
)

t.test(
  '[C11] PERMISSION_DENIED mid-stream: the SVID is no longer presented, the source is not ready',
  async (t) => {
    const api = await devApi(t)
    const { source: s } = source(t, api.endpoint)
    await s.waitReady({ timeoutMs: 5000 })
    api.removeWorkload(AGENT)
    await waitFor(() => !s.ready, 'the revoked SVID to be dropped')
    t.equal(s.svid, undefined)
    t.equal(s.lastError?.code, 'SPIFFE_WLAPI_NO_IDENTITY')
    api.addWorkload({ spiffeId: AGENT, hint: 'agent' })
    await s.waitReady({ timeoutMs: 5000 })
  },
)

t.test(
  '[C33] an SVID is never handed out past its NotAfter, even while the Workload API is away',
  async (t) => {
    let now = Date.now()
    const api = await devApi(t)
    const { source: s } = source(t, api.endpoint, { now: () => now })
    await s.waitReady({ timeoutMs: 5000 })
    await api.stop()
    const svid = s.getX509Svid()
    now = svid.notAfter.getTime() + 1
    t.equal(s.svid, undefined)
    t.equal(s.ready, false)
    t.throws(() => s.getX509Svid(), { code: 'SPIFFE_WLAPI_NO_IDENTITY', reason: 'SVID_EXPIRED' })
  },
)

t.test('rotation: the dev Workload API renews at half the TTL and the source follows', async (t) => {
  const api = await devApi(t, { x509SvidTtlMs: 2000 })
  const { source: s } = source(t, api.endpoint)
  await s.waitReady({ timeoutMs: 5000 })
  const serials = new Set([s.getX509Svid().serialNumber])
  s.onUpdate(() => {
    if (s.svid) serials.add(s.svid.serialNumber)
  })
  await waitFor(() => serials.size >= 3, 'two rotations', 10_000)
  t.ok(serials.size >= 3)
})

t.test(
  '[C37] JWT-SVIDs: no empty audience is sent; no identity surfaces; tokens are cached until half-life',
  async (t) => {
    const api = await devApi(t, { jwtSvidTtlMs: 60_000 })
    let now = Date.now()
    const jwt = await JwtSource.create({ address: api.endpoint, now: () => now, timeoutMs: 5000 })
    t.teardown(() => jwt.close())
    const before = api.calls.FetchJWTSVID ?? 0
    await t.rejects(jwt.fetchJwtSvid({ audience: [] }), {
      code: 'SPIFFE_ARGUMENT_INVALID',
      reason: 'EMPTY_AUDIENCE',
    })
    await t.rejects(jwt.fetchJwtSvid({ audience: '' }), { code: 'SPIFFE_ARGUMENT_INVALID' })
    t.equal(api.calls.FetchJWTSVID ?? 0, before, 'nothing was sent')
    const a = await jwt.fetchJwtSvid({ audience: ['llm', 'mcp'] })
    const b = await jwt.fetchJwtSvid({ audience: ['mcp', 'llm'] })
    t.equal(a.token, b.token, 'same audience set, same cached token')
    t.equal(api.calls.FetchJWTSVID, before + 1)
    now = a.halfLifeAt().getTime() + 1
    const c = await jwt.fetchJwtSvid({ audience: ['llm', 'mcp'] })
    t.not(c.token, a.token, 'refreshed after half-life')
    t.equal(jwt.validate(c.token, 'mcp').id.toString(), AGENT)
    api.removeWorkload(AGENT)
    await t.rejects(jwt.fetchJwtSvid({ audience: 'other' }), { code: 'SPIFFE_WLAPI_NO_IDENTITY' })
  },
)

t.test('close: pending waits reject, later calls fail with SPIFFE_WLAPI_CLOSED', async (t) => {
  const server = await ScriptedServer.start(socketDir(t))
  t.teardown(() => server.close())
  const s = new X509Source({ address: server.endpoint })
  const waiting = s.waitReady()
  let updates = 0
  s.onUpdate(() => updates++)
  s.close()
  await t.rejects(waiting, { code: 'SPIFFE_WLAPI_CLOSED' })
  t.equal(s.status, 'closed')
  t.equal(updates, 0, 'the caller’s own close() is not reported as an update')
  const client = new WorkloadApiClient({ address: server.endpoint })
  client.close()
  await t.rejects(async () => client.fetchX509Context(), { code: 'SPIFFE_WLAPI_CLOSED' })
})

function x509Message(issued: ReturnType<DevCa['issueX509Svid']>, ca: DevCa): X509SvidResponse {
  return {
    svids: [
      {
        spiffeId: issued.spiffeId,
        x509Svid: issued.certChainDer,
        x509SvidKey: issued.keyDer,
        bundle: ca.bundleDer(),
        hint: '',
      },
    ],
    crl: [],
    federatedBundles: {},
  }
}

function withSvid(msg: X509SvidResponse, patch: Partial<X509SvidMessage>): X509SvidResponse {
  return { ...msg, svids: [{ ...(msg.svids?.[0] as X509SvidMessage), ...patch }] }
}
