// RFC 5280 §4.2.1.10 name constraints on the CAs of a peer chain. Some upstream CAs that SPIRE's
// intermediate is issued under carry them (critical, as RFC 5280 requires, or not). Each case is
// also run through a real OpenSSL handshake so our verdict is held to the one OpenSSL and Go reach.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import tls from 'node:tls'
import { DevCa, type RawExtension } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { BundleSet, TrustDomain, verifyX509Svid, X509Bundle, x509BundleSource } from '../src/index.ts'

const ID = 'spiffe://example.org/ns/prod/sa/agent'
const NAME_CONSTRAINTS = '2.5.29.30'

function tlv(tag: number, body: Buffer): Buffer {
  const n = body.length
  const len = n < 0x80 ? Buffer.of(n) : n < 0x100 ? Buffer.of(0x81, n) : Buffer.of(0x82, n >> 8, n & 0xff)
  return Buffer.concat([Buffer.of(tag), len, body])
}
const uri = (s: string) => tlv(0x86, Buffer.from(s))
const dns = (s: string) => tlv(0x82, Buffer.from(s))
const email = (s: string) => tlv(0x81, Buffer.from(s))
// directoryName [4] is EXPLICIT (Name is a CHOICE): C=US as the leaves' subjects encode it (PrintableString).
const dirCountry = (c: string) =>
  tlv(
    0xa4,
    tlv(
      0x30,
      tlv(
        0x31,
        tlv(0x30, Buffer.concat([tlv(0x06, Buffer.of(0x55, 0x04, 0x06)), tlv(0x13, Buffer.from(c))])),
      ),
    ),
  )

function nameConstraints(critical: boolean, permitted: Buffer[], excluded: Buffer[] = []): RawExtension {
  const part = (tag: number, names: Buffer[]) =>
    names.length === 0 ? [] : [tlv(tag, Buffer.concat(names.map((n) => tlv(0x30, n))))]
  return {
    oid: NAME_CONSTRAINTS,
    critical,
    value: tlv(0x30, Buffer.concat([...part(0xa0, permitted), ...part(0xa1, excluded)])),
  }
}

const ca = DevCa.create({ trustDomain: 'example.org' })
const bundles = x509BundleSource(
  new BundleSet([X509Bundle.fromAuthorities(TrustDomain.parse('example.org'), [ca.root])]),
)

/** OpenSSL's verdict on the same chain: a TLS client trusting only the root, no hostname check. */
async function openSslAccepts(t: Test, issued: ReturnType<DevCa['issueX509Svid']>): Promise<boolean> {
  const server = tls.createServer({ cert: issued.certChainPem, key: issued.keyPem }, (s) => s.end())
  server.on('tlsClientError', () => {})
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const client = tls.connect({
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    ca: ca.bundlePem(),
    checkServerIdentity: () => undefined,
  })
  const accepted = await new Promise<boolean>((resolve) => {
    client.once('secureConnect', () => resolve(true))
    client.once('error', () => resolve(false))
  })
  client.destroy()
  return accepted
}

const cases: Array<[string, RawExtension, { spiffeId?: string; dnsNames?: string[] }, boolean]> = [
  [
    'critical, permits the leaf’s trust domain (URI host)',
    nameConstraints(true, [uri('example.org')]),
    {},
    true,
  ],
  [
    'critical, permits a DNS subtree the leaf’s DNS SAN is in',
    nameConstraints(true, [dns('svc.local')]),
    { dnsNames: ['a.svc.local'] },
    true,
  ],
  [
    'permits only hosts below example.org, not example.org itself',
    nameConstraints(true, [uri('.example.org')]),
    {},
    false,
  ],
  [
    'not critical, excludes the leaf’s trust domain',
    nameConstraints(false, [], [uri('example.org')]),
    {},
    false,
  ],
  [
    'not critical, permits another trust domain only',
    nameConstraints(false, [uri('partner.example')]),
    {},
    false,
  ],
  [
    'critical, the leaf’s DNS SAN is outside the permitted DNS subtree',
    nameConstraints(true, [dns('svc.local')]),
    { dnsNames: ['a.evil.local'] },
    false,
  ],
  ['critical, permits the leaf’s subject C=US', nameConstraints(true, [dirCountry('US')]), {}, true],
  ['critical, permits subjects under C=DE only', nameConstraints(true, [dirCountry('DE')]), {}, false],
]

t.test('name constraints of an intermediate bind the leaf, as OpenSSL binds them', async (t) => {
  for (const [name, extension, leafOpts, ok] of cases) {
    const inter = ca.createIntermediate({ extraExtensions: [extension] })
    const issued = inter.issueX509Svid({ spiffeId: ID, ...leafOpts })
    t.equal(await openSslAccepts(t, issued), ok, `OpenSSL: ${name}`)
    if (ok) {
      t.equal(verifyX509Svid(issued.certificates, bundles).id.toString(), ID, name)
    } else {
      t.throws(
        () => verifyX509Svid(issued.certificates, bundles),
        { code: 'SPIFFE_CHAIN_UNVERIFIED', reason: 'NAME_CONSTRAINTS' },
        name,
      )
    }
  }
})

t.test('a constrained upstream intermediate binds the SPIRE intermediate below it too', async (t) => {
  // Upstream intermediate permits example.org; SPIRE's CA under it claims another trust domain.
  const upstream = ca.createIntermediate({ extraExtensions: [nameConstraints(true, [uri('example.org')])] })
  const good = upstream.createIntermediate()
  const issuedGood = good.issueX509Svid({ spiffeId: ID })
  t.equal(verifyX509Svid(issuedGood.certificates, bundles).id.toString(), ID)
  const stray = upstream.createIntermediate({ uriSans: ['spiffe://partner.example'] })
  const issued = stray.issueX509Svid({ spiffeId: ID })
  t.equal(await openSslAccepts(t, issued), false, 'OpenSSL refuses it')
  t.throws(() => verifyX509Svid(issued.certificates, bundles), {
    code: 'SPIFFE_CHAIN_UNVERIFIED',
    reason: 'NAME_CONSTRAINTS',
  })
})

t.test(
  'a subtree that spells out minimum 0 is read; a maximum cannot be honoured and fails closed',
  async (t) => {
    const withMin = tlv(0x30, Buffer.concat([uri('example.org'), tlv(0x80, Buffer.of(0))]))
    const withMax = tlv(0x30, Buffer.concat([uri('example.org'), tlv(0x81, Buffer.of(1))]))
    for (const [subtree, ok] of [
      [withMin, true],
      [withMax, false],
    ] as const) {
      const value = tlv(0x30, tlv(0xa0, subtree))
      const inter = ca.createIntermediate({
        extraExtensions: [{ oid: NAME_CONSTRAINTS, critical: true, value }],
      })
      const issued = inter.issueX509Svid({ spiffeId: ID })
      t.equal(await openSslAccepts(t, issued), ok, `OpenSSL: ${ok ? 'minimum 0' : 'maximum'}`)
      if (ok) t.equal(verifyX509Svid(issued.certificates, bundles).id.toString(), ID)
      else
        t.throws(() => verifyX509Svid(issued.certificates, bundles), {
          code: 'SPIFFE_CHAIN_UNVERIFIED',
          reason: 'NAME_CONSTRAINTS',
        })
    }
  },
)

t.test('a name constraint form we cannot evaluate fails closed', async (t) => {
  const inter = ca.createIntermediate({
    extraExtensions: [nameConstraints(true, [], [email('x@example.org')])],
  })
  const issued = inter.issueX509Svid({ spiffeId: ID })
  t.throws(() => verifyX509Svid(issued.certificates, bundles), {
    code: 'SPIFFE_CHAIN_UNVERIFIED',
    reason: 'NAME_CONSTRAINTS',
  })
})
