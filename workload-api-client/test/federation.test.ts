// Bundle endpoint client, server and refreshing source against real HTTPS servers on loopback,
// with dev-CA certificates: https_web (a Web PKI certificate from a private root) and https_spiffe.
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { DevCa, DevJwtIssuer, DevWorkloadApi, spiffeBundleDocument } from '@svidecar/certs'
import t, { type Test } from 'tap'
import {
  BundleEndpointServer,
  FederatedBundleSource,
  fetchSpiffeBundle,
  SpiffeBundle,
  type SpiffeError,
  TrustDomain,
  X509Bundle,
  X509Source,
  X509Svid,
} from '../src/index.ts'
import { ManualClock } from './helpers/manual-clock.ts'
import { waitFor } from './helpers/wait.ts'

const fedTd = TrustDomain.parse('fed.test')
const fedCa = DevCa.create({ trustDomain: 'fed.test', intermediates: 1 })
const otherCa = DevCa.create({ trustDomain: 'fed.test' })
const jwt = DevJwtIssuer.create({ trustDomain: 'fed.test', kid: 'fed-jwt' })
const webCa = DevCa.create({ trustDomain: 'web.test', commonName: 'svidecar test web root' })
const webCert = webCa.issueX509Svid({ uriSans: [], dnsNames: ['localhost'] })
const ENDPOINT_ID = 'spiffe://fed.test/bundle-endpoint'

function svidOf(ca: DevCa, spiffeId: string): X509Svid {
  const issued = ca.issueX509Svid({ spiffeId })
  return X509Svid.parsePem(issued.certChainPem, issued.keyPem)
}

const fedBundle = SpiffeBundle.parse(
  fedTd,
  spiffeBundleDocument({ x509Authorities: [fedCa], jwtIssuers: [jwt], sequence: 7, refreshHintSeconds: 60 }),
)

/** A raw HTTPS server whose answers the test scripts, for documents our server would never send. */
async function rawServer(
  t: Test,
  cert: { certChainPem: string; keyPem: string },
  handler: Parameters<typeof createServer>[1],
): Promise<{ server: Server; port: number }> {
  const server = createServer({ cert: cert.certChainPem, key: cert.keyPem }, handler)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { server, port: (server.address() as AddressInfo).port }
}

function spiffeProfile(id = ENDPOINT_ID) {
  return { type: 'https_spiffe' as const, endpointSpiffeId: id }
}

t.test(
  'https_web: fetches through a certificate that names the host and chains to the given root',
  async (t) => {
    const server = await BundleEndpointServer.start({
      trustDomain: fedTd,
      bundle: () => fedBundle,
      profile: { type: 'https_web', cert: webCert.certChainPem, key: webCert.keyPem },
      path: '/bundle',
    })
    t.teardown(() => server.close())
    const url = `https://localhost:${server.port}/bundle`
    const got = await fetchSpiffeBundle({
      trustDomain: 'fed.test',
      url,
      profile: { type: 'https_web', ca: webCa.bundlePem() },
    })
    t.equal(got.toJson(), fedBundle.toJson(), 'the served bundle, sequence and hint included')
    t.equal(got.sequence, 7n)

    await t.rejects(
      fetchSpiffeBundle({ trustDomain: 'fed.test', url, profile: { type: 'https_web' } }),
      { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED', reason: 'WEB_PKI' },
      'a private root is not in the public Web PKI store',
    )
    await t.rejects(
      fetchSpiffeBundle({
        trustDomain: 'fed.test',
        url: `https://127.0.0.1:${server.port}/bundle`,
        profile: { type: 'https_web', ca: webCa.bundlePem() },
      }),
      { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED', reason: 'WEB_PKI' },
      'the certificate names localhost, not 127.0.0.1',
    )
    await t.rejects(
      fetchSpiffeBundle({
        trustDomain: 'fed.test',
        url: `https://localhost:${server.port}/other`,
        profile: { type: 'https_web', ca: webCa.bundlePem() },
      }),
      { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE', reason: 'HTTP_STATUS' },
    )
  },
)

t.test('endpoint URLs: https only, no userinfo', async (t) => {
  for (const url of ['http://localhost/', 'https://user:pw@localhost/', 'not a url']) {
    await t.rejects(
      fetchSpiffeBundle({ trustDomain: 'fed.test', url, profile: { type: 'https_web' } }),
      { code: 'SPIFFE_ARGUMENT_INVALID' },
      url,
    )
  }
})

t.test(
  'https_spiffe: the whole presented chain is verified against the endpoint trust domain bundle',
  async (t) => {
    const server = await BundleEndpointServer.start({
      trustDomain: fedTd,
      bundle: () => fedBundle,
      profile: { type: 'https_spiffe', svidSource: { getX509Svid: () => svidOf(fedCa, ENDPOINT_ID) } },
    })
    t.teardown(() => server.close())
    const got = await fetchSpiffeBundle(
      { trustDomain: fedTd, url: server.url, profile: spiffeProfile() },
      { endpointBundles: fedBundle },
    )
    t.same(got.jwt.authorities.has('fed-jwt'), true, 'the JWT key came through')

    await t.rejects(
      fetchSpiffeBundle(
        { trustDomain: fedTd, url: server.url, profile: spiffeProfile('spiffe://fed.test/someone-else') },
        { endpointBundles: fedBundle },
      ),
      { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED', reason: 'WRONG_SPIFFE_ID' },
    )
    const otherBundle = SpiffeBundle.from(fedTd, { x509: X509Bundle.fromAuthorities(fedTd, [otherCa.root]) })
    await t.rejects(
      fetchSpiffeBundle(
        { trustDomain: fedTd, url: server.url, profile: spiffeProfile() },
        { endpointBundles: otherBundle },
      ),
      { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED', reason: 'SVID_UNVERIFIED' },
      'an SVID from a CA outside the held bundle',
    )
    await t.rejects(fetchSpiffeBundle({ trustDomain: fedTd, url: server.url, profile: spiffeProfile() }), {
      code: 'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED',
      reason: 'NO_ENDPOINT_BUNDLE',
    })
  },
)

t.test('https_spiffe: a request never reaches an endpoint whose SVID is refused', async (t) => {
  let requests = 0
  const wrong = fedCa.issueX509Svid({ spiffeId: 'spiffe://fed.test/impostor' })
  const { port } = await rawServer(t, wrong, (_req, res) => {
    requests++
    res.end(fedBundle.toJson())
  })
  await t.rejects(
    fetchSpiffeBundle(
      { trustDomain: fedTd, url: `https://127.0.0.1:${port}/`, profile: spiffeProfile() },
      { endpointBundles: fedBundle },
    ),
    { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED', reason: 'WRONG_SPIFFE_ID' },
  )
  t.equal(requests, 0)
})

t.test('malformed, oversized, slow and redirecting endpoints are refused with typed errors', async (t) => {
  const cert = fedCa.issueX509Svid({ spiffeId: ENDPOINT_ID })
  let answer: (res: import('node:http').ServerResponse) => void = (res) => res.end('{}')
  const { port } = await rawServer(t, cert, (_req, res) => answer(res))
  const endpoint = { trustDomain: fedTd, url: `https://127.0.0.1:${port}/b`, profile: spiffeProfile() }
  const fetch = (opts = {}) => fetchSpiffeBundle(endpoint, { endpointBundles: fedBundle, ...opts })

  answer = (res) => res.end('{"keys": [')
  await t.rejects(fetch(), { code: 'SPIFFE_BUNDLE_INVALID', reason: 'MALFORMED' })
  answer = (res) => res.end('{"nokeys": []}')
  await t.rejects(fetch(), { code: 'SPIFFE_BUNDLE_INVALID', reason: 'MISSING_KEYS' })
  answer = (res) => res.end('{"keys": [], "spiffe_sequence": -1}')
  await t.rejects(fetch(), { code: 'SPIFFE_BUNDLE_INVALID', reason: 'BAD_SEQUENCE' })

  const big = `{"keys": [], "pad": "${'x'.repeat(4096)}"}`
  answer = (res) => res.end(big)
  await t.rejects(
    fetch({ maxBytes: 1024 }),
    { code: 'SPIFFE_BUNDLE_INVALID', reason: 'TOO_LARGE' },
    'declared length',
  )
  answer = (res) => {
    // Chunked, no content-length: the cap applies while reading.
    res.write(big.slice(0, 2000))
    res.end(big.slice(2000))
  }
  await t.rejects(
    fetch({ maxBytes: 1024 }),
    { code: 'SPIFFE_BUNDLE_INVALID', reason: 'TOO_LARGE' },
    'streamed',
  )

  answer = () => {} // never answers
  await t.rejects(fetch({ timeoutMs: 300 }), {
    code: 'SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE',
    reason: 'TIMEOUT',
  })

  answer = (res) => {
    res.writeHead(500)
    res.end()
  }
  await t.rejects(fetch(), { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE', reason: 'HTTP_STATUS' })

  answer = (res) => {
    res.writeHead(302, { location: `http://127.0.0.1:${port}/b` })
    res.end()
  }
  await t.rejects(
    fetch(),
    { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE', reason: 'REDIRECT' },
    'a redirect to http',
  )

  let hops = 0
  answer = (res) => {
    if (hops++ === 0) {
      res.writeHead(307, { location: '/moved' })
      res.end()
    } else res.end(fedBundle.toJson())
  }
  t.equal((await fetch()).sequence, 7n, 'a redirect to a valid URL is followed, with the same SVID check')
})

t.test('https_spiffe server: presents the rotated SVID of an X509Source without a restart', async (t) => {
  const api = await DevWorkloadApi.start({ trustDomain: 'fed.test', workloads: [{ spiffeId: ENDPOINT_ID }] })
  t.teardown(() => api.close())
  const source = await X509Source.create({ address: api.endpoint, timeoutMs: 10_000 })
  t.teardown(() => source.close())
  const server = await BundleEndpointServer.start({
    trustDomain: fedTd,
    bundle: () => SpiffeBundle.from(fedTd, { x509: source.getX509BundleForTrustDomain(fedTd) as X509Bundle }),
    profile: { type: 'https_spiffe', svidSource: source },
  })
  t.teardown(() => server.close())
  const presented = async (): Promise<string> => {
    const { connect } = await import('node:tls')
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false }, () => {
        resolve(s.getPeerCertificate().serialNumber)
        s.destroy()
      })
      s.once('error', reject)
    })
  }
  const before = await presented()
  t.equal(before.toUpperCase(), source.getX509Svid().serialNumber.toUpperCase())
  const updates = source.updateCount
  api.rotateNow()
  await waitFor(() => source.updateCount > updates, 'the rotated SVID')
  await waitFor(async () => (await presented()) !== before, 'the server to present the new SVID')

  const got = await fetchSpiffeBundle(
    { trustDomain: fedTd, url: server.url, profile: spiffeProfile() },
    { endpointBundles: source },
  )
  t.equal(got.refreshHintSeconds, 300, 'the default hint is added')
  t.type(got.sequence, 'bigint', 'a sequence is assigned')
})

t.test('server: sequence grows when the keys change, 404/405 elsewhere', async (t) => {
  let current = SpiffeBundle.from(fedTd, { x509: X509Bundle.fromAuthorities(fedTd, [fedCa.root]) })
  const server = await BundleEndpointServer.start({
    trustDomain: fedTd,
    bundle: () => current,
    profile: { type: 'https_web', cert: webCert.certChainPem, key: webCert.keyPem },
  })
  t.teardown(() => server.close())
  const first = server.currentDocument() as string
  t.equal(server.currentDocument(), first, 'unchanged keys, unchanged document')
  const seq1 = SpiffeBundle.parse(fedTd, first).sequence as bigint
  current = SpiffeBundle.from(fedTd, { x509: X509Bundle.fromAuthorities(fedTd, [fedCa.root, otherCa.root]) })
  const seq2 = SpiffeBundle.parse(fedTd, server.currentDocument() as string).sequence as bigint
  t.ok(seq2 > seq1, `sequence ${seq2} > ${seq1}`)

  const status = async (path: string, method = 'GET'): Promise<number> => {
    const { request } = await import('node:https')
    return new Promise((resolve, reject) => {
      const req = request(
        `https://localhost:${server.port}${path}`,
        { method, ca: webCa.bundlePem() },
        (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        },
      )
      req.once('error', reject)
      req.end()
    })
  }
  t.equal(await status('/'), 200)
  t.equal(await status('/x'), 404)
  t.equal(await status('/', 'POST'), 405)
})

t.test('source: refreshes per spiffe_refresh_hint, keeps the last good bundle and says why', async (t) => {
  const cert = fedCa.issueX509Svid({ spiffeId: ENDPOINT_ID })
  let body = spiffeBundleDocument({ x509Authorities: [fedCa], sequence: 10, refreshHintSeconds: 120 })
  let served = 0
  const { server, port } = await rawServer(t, cert, (_req, res) => {
    served++
    res.end(body)
  })
  const clock = new ManualClock()
  const errors: SpiffeError[] = []
  const source = new FederatedBundleSource({
    endpoint: { trustDomain: fedTd, url: `https://127.0.0.1:${port}/`, profile: spiffeProfile() },
    initialBundle: fedBundle,
    clock,
    minRefreshMs: 1000,
    maxRefreshMs: 600_000,
    maxBytes: 64 * 1024,
  })
  t.teardown(() => source.close())
  source.onError((err) => errors.push(err))
  await source.waitFetched({ timeoutMs: 10_000 })
  await waitFor(() => clock.pending === 1, 'the first wait')
  t.equal(source.bundle?.sequence, 10n)
  t.equal(source.nextRefreshInMs, 120_000, 'the hint, in ms')

  const step = async (expectAttempts: number): Promise<void> => {
    clock.advance(source.nextRefreshInMs as number)
    await waitFor(
      () => source.attempts === expectAttempts && clock.pending === 1,
      `attempt ${expectAttempts}`,
    )
  }

  body = '{"keys": [ broken'
  await step(2)
  t.equal(source.bundle?.sequence, 10n, 'malformed: the last good bundle stays')
  t.match(source.lastError, { code: 'SPIFFE_BUNDLE_INVALID', reason: 'MALFORMED' })
  t.equal(source.nextRefreshInMs, 1000, 'first retry after minRefreshMs')
  await step(3)
  t.equal(source.nextRefreshInMs, 2000, 'then doubling')

  body = `{"keys": [], "pad": "${'x'.repeat(70 * 1024)}"}`
  await step(4)
  t.match(source.lastError, { code: 'SPIFFE_BUNDLE_INVALID', reason: 'TOO_LARGE' })
  t.equal(source.bundle?.sequence, 10n, 'oversized: kept')

  body = spiffeBundleDocument({ x509Authorities: [fedCa], sequence: 9, refreshHintSeconds: 120 })
  await step(5)
  t.match(source.lastError, { code: 'SPIFFE_BUNDLE_INVALID', reason: 'SEQUENCE_REGRESSED' })
  t.equal(source.bundle?.sequence, 10n, 'an older sequence is refused')

  // The endpoint changes its TLS identity: same CA, another SPIFFE ID.
  const impostor = fedCa.issueX509Svid({ spiffeId: 'spiffe://fed.test/impostor' })
  server.setSecureContext({ cert: impostor.certChainPem, key: impostor.keyPem })
  body = spiffeBundleDocument({ x509Authorities: [fedCa], sequence: 11 })
  const servedBefore = served
  await step(6)
  t.match(source.lastError, { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED', reason: 'WRONG_SPIFFE_ID' })
  t.equal(source.bundle?.sequence, 10n, 'identity change: kept')
  t.equal(served, servedBefore, 'no request reached the impostor')

  server.setSecureContext({ cert: cert.certChainPem, key: cert.keyPem })
  const updates: bigint[] = []
  source.onUpdate((b) => updates.push(b.sequence as bigint))
  await step(7)
  t.equal(source.lastError, undefined, 'recovered')
  t.same(updates, [11n])
  t.equal(source.nextRefreshInMs, 300_000, 'no hint: the five-minute default')
  t.same(
    errors.map((e) => e.reason),
    ['MALFORMED', 'MALFORMED', 'TOO_LARGE', 'SEQUENCE_REGRESSED', 'WRONG_SPIFFE_ID'],
    'every failure reported',
  )
  t.ok(source.getX509BundleForTrustDomain(fedTd))
  t.equal(source.getX509BundleForTrustDomain(TrustDomain.parse('other.test')), undefined)
})

t.test('source: hints are bounded by minRefreshMs and maxRefreshMs', async (t) => {
  const cert = fedCa.issueX509Svid({ spiffeId: ENDPOINT_ID })
  let hint = 0
  const { port } = await rawServer(t, cert, (_req, res) =>
    res.end(spiffeBundleDocument({ x509Authorities: [fedCa], refreshHintSeconds: hint })),
  )
  const clock = new ManualClock()
  const source = new FederatedBundleSource({
    endpoint: { trustDomain: fedTd, url: `https://127.0.0.1:${port}/`, profile: spiffeProfile() },
    initialBundle: fedBundle,
    clock,
    minRefreshMs: 5000,
    maxRefreshMs: 3_600_000,
  })
  t.teardown(() => source.close())
  await waitFor(() => clock.pending === 1, 'the first wait')
  t.equal(source.nextRefreshInMs, 5000, 'a zero hint is raised to the minimum')
  hint = 86_400
  clock.advance(5000)
  await waitFor(() => source.attempts === 2 && clock.pending === 1, 'the second fetch')
  t.equal(source.nextRefreshInMs, 3_600_000, 'a day is capped at the maximum')
})

t.test('source: a self-serving https_spiffe endpoint needs an initial bundle', async (t) => {
  t.throws(
    () =>
      new FederatedBundleSource({
        endpoint: { trustDomain: fedTd, url: 'https://127.0.0.1:1/', profile: spiffeProfile() },
      }),
    { code: 'SPIFFE_ARGUMENT_INVALID' },
  )
})

t.test(
  'source (https_web): a certificate from another CA is refused, the bundle kept, retries capped at the interval',
  async (t) => {
    const server = await BundleEndpointServer.start({
      trustDomain: fedTd,
      bundle: () => fedBundle,
      profile: { type: 'https_web', cert: webCert.certChainPem, key: webCert.keyPem },
    })
    t.teardown(() => server.close())
    const clock = new ManualClock()
    const source = new FederatedBundleSource({
      endpoint: {
        trustDomain: fedTd,
        url: `https://localhost:${server.port}/`,
        profile: { type: 'https_web', ca: webCa.bundlePem() },
      },
      clock,
      minRefreshMs: 20_000,
    })
    t.teardown(() => source.close())
    await source.waitFetched({ timeoutMs: 10_000 })
    await waitFor(() => clock.pending === 1, 'the first wait')
    t.equal(source.nextRefreshInMs, 60_000, "the bundle's 60 s hint")

    const rogueCa = DevCa.create({ trustDomain: 'web.test', commonName: 'svidecar test web root' })
    const rogue = rogueCa.issueX509Svid({ uriSans: [], dnsNames: ['localhost'] })
    server.setWebCertificate(rogue.certChainPem, rogue.keyPem)
    const delays: number[] = []
    for (let attempt = 2; attempt <= 4; attempt++) {
      clock.advance(source.nextRefreshInMs as number)
      await waitFor(() => source.attempts === attempt && clock.pending === 1, `attempt ${attempt}`)
      delays.push(source.nextRefreshInMs as number)
      t.match(source.lastError, { code: 'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED', reason: 'WEB_PKI' })
      t.equal(source.bundle?.toJson(), fedBundle.toJson(), 'the last good bundle stays')
    }
    t.same(delays, [20_000, 40_000, 60_000], 'doubling from minRefreshMs, never past the poll interval')
  },
)
