import type { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import tls from 'node:tls'
import { DevCa, type LeafOptions } from '@svidecar/certs'
import t from 'tap'
import {
  BundleSet,
  clearX509Cache,
  SpiffeError,
  TrustDomain,
  verifyX509Svid,
  X509Bundle,
  X509Svid,
  x509BundleSource,
} from '../src/index.ts'
import { splitDerCertificates } from '../src/internal/der.ts'

const TD = TrustDomain.parse('example.org')
const FED = TrustDomain.parse('partner.example')
const ca = DevCa.create({ trustDomain: 'example.org' })
const inter = ca.createIntermediate()
const partnerCa = DevCa.create({ trustDomain: 'partner.example' })
const ID = 'spiffe://example.org/ns/prod/sa/agent'

const bundleOf = (...cas: DevCa[]) =>
  X509Bundle.fromAuthorities(
    TrustDomain.parse(cas[0]?.trustDomain ?? 'example.org'),
    cas.map((c) => c.root),
  )
const localBundles = x509BundleSource(new BundleSet([bundleOf(ca)]))

function leaf(opts: LeafOptions, issuer: DevCa = ca) {
  return issuer.issueX509Svid({ spiffeId: ID, ...opts })
}

t.test('[C13] a leaf + intermediate DER chain is split and parsed in order', async (t) => {
  const issued = leaf({}, inter)
  const parts = splitDerCertificates(issued.certChainDer)
  t.equal(parts.length, 2)
  t.ok(parts[0]?.equals(issued.certificates[0]?.raw as Buffer))
  t.ok(parts[1]?.equals(issued.certificates[1]?.raw as Buffer))
  const svid = X509Svid.parseRaw(issued.certChainDer, issued.keyDer)
  t.equal(svid.certificates.length, 2)
  t.equal(svid.id.toString(), ID)
  t.ok(svid.chainDer.equals(issued.certChainDer))
  t.equal(svid.toPem().certChain.match(/BEGIN CERTIFICATE/g)?.length, 2)
})

t.test('[C13] the full chain is presented in TLS, so a peer holding only the root verifies it', async (t) => {
  const issued = leaf({}, inter)
  const own = X509Svid.parseRaw(issued.certChainDer, issued.keyDer)
  const { certChain, key } = own.toPem()
  const server = tls.createServer({ cert: certChain, key }, (s) => s.end('hi'))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const port = (server.address() as AddressInfo).port
  const client = tls.connect({
    host: '127.0.0.1',
    port,
    ca: ca.bundlePem(),
    checkServerIdentity: () => undefined,
  })
  await once(client, 'secureConnect')
  const peer = client.getPeerCertificate(true)
  t.equal(peer.serialNumber, own.leaf.serialNumber)
  t.equal(peer.issuerCertificate?.serialNumber, inter.certificate.serialNumber)
  const presented = [client.getPeerX509Certificate(), peer.issuerCertificate?.raw]
  t.equal(verifyX509Svid(presented as [X509Certificate, Buffer], localBundles).id.toString(), ID)
  client.destroy()
})

t.test('[C14] EC P-256, EC P-384 and RSA-2048 PKCS#8 DER keys are accepted', async (t) => {
  for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
    for (const issuer of [ca, DevCa.create({ trustDomain: 'example.org', keyType })]) {
      const issued = leaf({ keyType }, issuer)
      const svid = X509Svid.parseRaw(issued.certChainDer, issued.keyDer)
      t.equal(svid.privateKey.asymmetricKeyType, keyType.startsWith('ec') ? 'ec' : 'rsa', keyType)
      const bundles = x509BundleSource(new BundleSet([bundleOf(issuer)]))
      t.equal(verifyX509Svid(svid.certificates, bundles).id.toString(), ID, `${keyType} verifies`)
    }
  }
})

t.test('a conformant SVID parses from PEM and round-trips through toPem', async (t) => {
  const issued = leaf({ dnsNames: ['agent.local'] }, inter)
  const svid = X509Svid.parsePem(issued.certChainPem, issued.keyPem, 'internal')
  t.equal(svid.hint, 'internal')
  const again = X509Svid.parsePem(svid.toPem().certChain, svid.toPem().key, 'internal')
  t.ok(again.equals(svid))
  t.notOk(JSON.stringify(svid).includes('PRIVATE'), 'JSON form carries no key')
})

// Each case is a certificate no conformant SVID may be; own parsing and peer verification refuse it alike.
const leafViolations: Array<[string, LeafOptions, string]> = [
  ['[C18] two URI SANs', { uriSans: [ID, 'spiffe://example.org/other'] }, 'MULTIPLE_URI_SANS'],
  ['[C18] no URI SAN', { uriSans: [], dnsNames: ['x.local'] }, 'NO_URI_SAN'],
  ['[C19] cA=true', { isCa: true }, 'LEAF_IS_CA'],
  ['[C19] keyCertSign', { keyUsage: { keyCertSign: true } }, 'LEAF_KEY_CERT_SIGN'],
  ['[C19] cRLSign', { keyUsage: { cRLSign: true } }, 'LEAF_CRL_SIGN'],
  ['[C20] root path', { spiffeId: 'spiffe://example.org' }, 'ROOT_PATH'],
  ['URI SAN not a SPIFFE ID', { uriSans: ['spiffe://example.org/a/../admin'] }, 'BAD_SPIFFE_ID'],
  ['URI SAN with another scheme', { uriSans: ['https://example.org/a'] }, 'BAD_SPIFFE_ID'],
  ['empty subject with a non-critical SAN', { emptySubject: true, sanCritical: false }, 'SAN_NOT_CRITICAL'],
  [
    'unknown critical extension',
    { extraExtensions: [{ oid: '1.2.3.4.5', critical: true, value: Buffer.of(0x05, 0x00) }] },
    'UNKNOWN_CRITICAL_EXTENSION',
  ],
]

t.test('leaf rule violations are rejected with their reason, for own SVIDs and peers', async (t) => {
  for (const [name, opts, reason] of leafViolations) {
    const issued = leaf(opts)
    t.throws(
      () => X509Svid.parseRaw(issued.certChainDer, issued.keyDer),
      { code: 'SPIFFE_SVID_INVALID', reason },
      `own: ${name}`,
    )
    t.throws(
      () => verifyX509Svid(issued.certificates, localBundles),
      { code: 'SPIFFE_SVID_INVALID', reason },
      `peer: ${name}`,
    )
  }
})

t.test('[C18] extra DNS SANs are accepted', async (t) => {
  const issued = leaf({ dnsNames: ['a.local', 'b.local'] })
  t.equal(verifyX509Svid(issued.certificates, localBundles).id.toString(), ID)
  t.equal(X509Svid.parseRaw(issued.certChainDer, issued.keyDer).id.toString(), ID)
})

t.test('[C19] our own SVID without digitalSignature or without keyUsage is rejected', async (t) => {
  const noDs = leaf({ keyUsage: { digitalSignature: false } })
  t.throws(() => X509Svid.parseRaw(noDs.certChainDer, noDs.keyDer), {
    code: 'SPIFFE_SVID_INVALID',
    reason: 'NO_DIGITAL_SIGNATURE',
  })
  const noKu = leaf({ omitKeyUsage: true })
  t.throws(() => X509Svid.parseRaw(noKu.certChainDer, noKu.keyDer), {
    code: 'SPIFFE_SVID_INVALID',
    reason: 'NO_KEY_USAGE',
  })
})

t.test('[C9] a key that does not match the leaf is rejected', async (t) => {
  const issued = leaf({ mismatchedKey: true })
  t.throws(() => X509Svid.parseRaw(issued.certChainDer, issued.keyDer), {
    code: 'SPIFFE_SVID_INVALID',
    reason: 'KEY_MISMATCH',
  })
})

t.test('malformed bytes give typed errors', async (t) => {
  const good = leaf({})
  const cases: Array<[string, () => unknown, string, string]> = [
    ['empty chain', () => X509Svid.parseRaw(Buffer.alloc(0), good.keyDer), 'SPIFFE_SVID_INVALID', 'EMPTY'],
    [
      'truncated chain',
      () => X509Svid.parseRaw(good.certChainDer.subarray(0, 100), good.keyDer),
      'SPIFFE_SVID_INVALID',
      'BAD_DER',
    ],
    [
      'trailing garbage',
      () => X509Svid.parseRaw(Buffer.concat([good.certChainDer, Buffer.of(0x30, 0x05)]), good.keyDer),
      'SPIFFE_SVID_INVALID',
      'BAD_DER',
    ],
    [
      'not a certificate',
      () => X509Svid.parseRaw(Buffer.of(0x30, 0x03, 0x02, 0x01, 0x00), good.keyDer),
      'SPIFFE_SVID_INVALID',
      'BAD_CERTIFICATE',
    ],
    [
      'garbage key',
      () => X509Svid.parseRaw(good.certChainDer, Buffer.from('not a key')),
      'SPIFFE_SVID_INVALID',
      'BAD_KEY',
    ],
    ['PEM without certificates', () => X509Svid.parsePem('', good.keyPem), 'SPIFFE_SVID_INVALID', 'EMPTY'],
    ['PEM without key', () => X509Svid.parsePem(good.certChainPem, ''), 'SPIFFE_SVID_INVALID', 'BAD_KEY'],
    ['peer chain empty', () => verifyX509Svid([], localBundles), 'SPIFFE_SVID_INVALID', 'EMPTY'],
    [
      'peer leaf garbage',
      () => verifyX509Svid([Buffer.of(1, 2, 3)], localBundles),
      'SPIFFE_SVID_INVALID',
      'BAD_CERTIFICATE',
    ],
    [
      'bundle garbage',
      () => X509Bundle.parseRaw(TD, Buffer.of(0x30, 0x80)),
      'SPIFFE_BUNDLE_INVALID',
      'BAD_DER',
    ],
    ['bundle PEM with a key', () => X509Bundle.parsePem(TD, good.keyPem), 'SPIFFE_BUNDLE_INVALID', 'BAD_PEM'],
  ]
  for (const [name, fn, code, reason] of cases) t.throws(fn, { code, reason }, name)
})

t.test('[C21] expired and not-yet-valid leaves and an expired intermediate are rejected', async (t) => {
  const now = Date.now()
  const expired = leaf({ notBefore: new Date(now - 7200_000), notAfter: new Date(now - 3600_000) })
  t.throws(() => verifyX509Svid(expired.certificates, localBundles), {
    code: 'SPIFFE_CHAIN_UNVERIFIED',
    reason: 'EXPIRED',
  })
  const future = leaf({ notBefore: new Date(now + 3600_000), notAfter: new Date(now + 7200_000) })
  t.throws(() => verifyX509Svid(future.certificates, localBundles), {
    code: 'SPIFFE_CHAIN_UNVERIFIED',
    reason: 'NOT_YET_VALID',
  })
  const longRoot = DevCa.create({ trustDomain: 'example.org', notBefore: new Date(now - 86400_000) })
  const longBundles = x509BundleSource(new BundleSet([bundleOf(longRoot)]))
  const oldInter = longRoot.createIntermediate({
    notBefore: new Date(now - 7200_000),
    notAfter: new Date(now - 60_000),
  })
  const viaOld = leaf({ notBefore: new Date(now - 600_000), notAfter: new Date(now + 600_000) }, oldInter)
  t.throws(() => verifyX509Svid(viaOld.certificates, longBundles), {
    code: 'SPIFFE_CHAIN_UNVERIFIED',
    reason: 'EXPIRED',
  })
  // The same chain at a time inside every window verifies: validity is checked against `now`.
  t.equal(verifyX509Svid(viaOld.certificates, longBundles, { now: now - 300_000 }).id.toString(), ID)
})

t.test(
  '[C22] a chain to a CA outside the bundle, or through a non-CA intermediate, is rejected',
  async (t) => {
    const stranger = DevCa.create({ trustDomain: 'example.org' })
    t.throws(() => verifyX509Svid(leaf({}, stranger).certificates, localBundles), {
      code: 'SPIFFE_CHAIN_UNVERIFIED',
      reason: 'UNKNOWN_AUTHORITY',
    })
    const notCa = ca.createIntermediate({ isCa: false })
    t.throws(() => verifyX509Svid(leaf({}, notCa).certificates, localBundles), {
      code: 'SPIFFE_CHAIN_UNVERIFIED',
      reason: 'SIGNER_NOT_CA',
    })
    const noCertSign = ca.createIntermediate({ keyUsage: { keyCertSign: false } })
    t.throws(() => verifyX509Svid(leaf({}, noCertSign).certificates, localBundles), {
      code: 'SPIFFE_CHAIN_UNVERIFIED',
    })
    // Own-SVID parsing refuses such chains too, before they are ever presented.
    const own = leaf({}, notCa)
    t.throws(() => X509Svid.parseRaw(own.certChainDer, own.keyDer), {
      code: 'SPIFFE_SVID_INVALID',
      reason: 'SIGNER_NOT_CA',
    })
    // An intermediate the peer did not send cannot be found.
    const viaInter = leaf({}, inter)
    t.throws(() => verifyX509Svid(viaInter.certificates.slice(0, 1), localBundles), {
      code: 'SPIFFE_CHAIN_UNVERIFIED',
      reason: 'UNKNOWN_AUTHORITY',
    })
    const deep = ca.createIntermediate({ pathLenConstraint: 0 }).createIntermediate()
    t.throws(() => verifyX509Svid(leaf({}, deep).certificates, localBundles), {
      code: 'SPIFFE_CHAIN_UNVERIFIED',
      reason: 'PATH_LEN_EXCEEDED',
    })
  },
)

t.test('[C23] a leaf claiming our trust domain but signed by a federated CA is rejected', async (t) => {
  const both = x509BundleSource(new BundleSet([bundleOf(ca), bundleOf(partnerCa)]))
  const forged = partnerCa.issueX509Svid({ spiffeId: 'spiffe://example.org/admin' })
  t.throws(() => verifyX509Svid(forged.certificates, both), {
    code: 'SPIFFE_CHAIN_UNVERIFIED',
    reason: 'UNKNOWN_AUTHORITY',
  })
  // The same CA's own workloads are fine: the bundle was picked by the leaf's trust domain.
  const honest = partnerCa.issueX509Svid({ spiffeId: 'spiffe://partner.example/agent' })
  t.equal(verifyX509Svid(honest.certificates, both).id.trustDomain, FED)
})

t.test('[C24] a federated peer is accepted only while its bundle is held', async (t) => {
  let set = new BundleSet([bundleOf(ca), bundleOf(partnerCa)])
  const peer = partnerCa.issueX509Svid({ spiffeId: 'spiffe://partner.example/agent' })
  t.equal(
    verifyX509Svid(peer.certificates, x509BundleSource(set)).id.toString(),
    'spiffe://partner.example/agent',
  )
  set = set.without(FED)
  t.throws(() => verifyX509Svid(peer.certificates, x509BundleSource(set)), {
    code: 'SPIFFE_BUNDLE_NOT_FOUND',
  })
  // An empty bundle means every SVID of that trust domain is untrusted.
  set = set.with(X509Bundle.fromAuthorities(FED, []))
  t.throws(() => verifyX509Svid(peer.certificates, x509BundleSource(set)), {
    code: 'SPIFFE_CHAIN_UNVERIFIED',
    reason: 'NO_AUTHORITIES',
  })
})

t.test(
  '[C25] during CA rotation peers under either root verify; after the old root leaves, its peers fail',
  async (t) => {
    // Same subject name for both roots, as SPIRE's rotated CAs have: the signature must pick the root.
    const oldRoot = DevCa.create({ trustDomain: 'example.org', commonName: 'rotating' })
    const newRoot = DevCa.create({ trustDomain: 'example.org', commonName: 'rotating' })
    const underOld = oldRoot.issueX509Svid({ spiffeId: ID })
    const underNew = newRoot.issueX509Svid({ spiffeId: ID })
    const overlap = x509BundleSource(new BundleSet([bundleOf(oldRoot, newRoot)]))
    t.equal(verifyX509Svid(underOld.certificates, overlap).id.toString(), ID)
    t.equal(verifyX509Svid(underNew.certificates, overlap).id.toString(), ID)
    const after = x509BundleSource(new BundleSet([bundleOf(newRoot)]))
    t.equal(verifyX509Svid(underNew.certificates, after).id.toString(), ID)
    t.throws(() => verifyX509Svid(underOld.certificates, after), {
      code: 'SPIFFE_CHAIN_UNVERIFIED',
      reason: 'UNKNOWN_AUTHORITY',
    })
  },
)

t.test('verification returns the path it validated and survives a cache reset', async (t) => {
  const issued = leaf({}, inter)
  const first = verifyX509Svid(splitDerCertificates(issued.certChainDer), localBundles)
  t.same(
    first.verifiedChain.map((c) => c.serialNumber),
    [issued.certificates[0]?.serialNumber, inter.certificate.serialNumber, ca.root.serialNumber],
  )
  clearX509Cache()
  t.equal(verifyX509Svid(issued.certificates, localBundles).verifiedChain.length, 3)
})

t.test('X509Bundle: DER, PEM, equality, duplicates and empty bundles', async (t) => {
  const a = X509Bundle.parseRaw(TD, Buffer.concat([ca.bundleDer(), partnerCa.bundleDer(), ca.bundleDer()]))
  t.equal(a.authorities.length, 2, 'duplicate roots are kept once')
  const b = X509Bundle.parsePem(TD, a.toPem())
  t.ok(a.equals(b))
  t.ok(X509Bundle.parseRaw(TD, b.toDer()).equals(a))
  t.ok(a.hasAuthority(ca.root))
  t.notOk(a.equals(X509Bundle.fromAuthorities(TD, [ca.root])))
  t.notOk(a.equals(X509Bundle.fromAuthorities(FED, a.authorities)))
  const empty = X509Bundle.parseRaw(TD, Buffer.alloc(0))
  t.equal(empty.isEmpty, true)
  t.equal(empty.toPem(), '')
  t.ok(empty.equals(X509Bundle.fromAuthorities(TD, [])))
})

t.test('errors are SpiffeErrors whose messages name the problem without key material', async (t) => {
  const issued = leaf({ mismatchedKey: true })
  try {
    X509Svid.parseRaw(issued.certChainDer, issued.keyDer)
    t.fail('expected a throw')
  } catch (err) {
    t.ok(err instanceof SpiffeError)
    t.match((err as Error).message, ID)
    t.notMatch((err as Error).message, /PRIVATE KEY/)
  }
})
