// A root renewed with the same key and name (cert-manager's default before v1.18, many upstream
// CAs): while the bundle holds both, the expired copy must not decide. Path validation looks for
// any valid path, as OpenSSL (which prefers a currently valid issuer) and Go (which tries every
// candidate) do, instead of settling on the first certificate whose signature fits.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import tls from 'node:tls'
import { DevCa } from '@svidecar/certs'
import t from 'tap'
import { BundleSet, TrustDomain, verifyX509Svid, X509Bundle, x509BundleSource } from '../src/index.ts'

const TD = TrustDomain.parse('example.org')
const ID = 'spiffe://example.org/ns/prod/sa/agent'
const HOUR = 3600_000

const now = Date.now()
const old = DevCa.create({
  trustDomain: 'example.org',
  notBefore: new Date(now - 48 * HOUR),
  notAfter: new Date(now - HOUR),
})
const renewed = old.renew({ notBefore: new Date(now - 2 * HOUR), ttlMs: 48 * HOUR })
const bundleOf = (...roots: DevCa[]) =>
  x509BundleSource(
    new BundleSet([
      X509Bundle.fromAuthorities(
        TD,
        roots.map((r) => r.root),
      ),
    ]),
  )

t.test('a leaf under a renewed root verifies while the bundle still holds the expired copy', async (t) => {
  t.ok(old.root.subject === renewed.root.subject && old.root.publicKey.equals(renewed.root.publicKey))
  const issued = renewed.issueX509Svid({ spiffeId: ID })
  for (const order of [
    [old, renewed],
    [renewed, old],
  ]) {
    t.equal(verifyX509Svid(issued.certificates, bundleOf(...order)).id.toString(), ID)
  }
  // OpenSSL agrees: a client trusting both copies accepts the server.
  const server = tls.createServer({ cert: issued.certChainPem, key: issued.keyPem }, (s) => s.end())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const client = tls.connect({
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    ca: [old.bundlePem(), renewed.bundlePem()],
    checkServerIdentity: () => undefined,
  })
  await once(client, 'secureConnect')
  client.destroy()
  // With only the expired copy the path still fails, and says why.
  t.throws(() => verifyX509Svid(issued.certificates, bundleOf(old)), {
    code: 'SPIFFE_CHAIN_UNVERIFIED',
    reason: 'EXPIRED',
  })
})
