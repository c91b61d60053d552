import { DevCa, DevJwtIssuer, spiffeBundleDocument, spiffeBundleMapDocument } from '@svidecar/certs'
import t from 'tap'
import { JwtSvid, SpiffeError, TrustDomain } from '../src/index.ts'
// Imported from the module itself: the index exports it once x509-bundle.ts lands.
import { parseSpiffeBundleMap, SpiffeBundle } from '../src/spiffe-bundle.ts'

const td = TrustDomain.parse('example.org')
const caOld = DevCa.create({ trustDomain: 'example.org' })
const caNew = DevCa.create({ trustDomain: 'example.org', keyType: 'rsa-2048' })
const jwtA = DevJwtIssuer.create({ trustDomain: 'example.org', kid: 'jwt-a' })
const jwtB = DevJwtIssuer.create({ trustDomain: 'example.org', keyType: 'rsa-2048', kid: 'jwt-b' })
const NOW = new Date('2030-01-01T00:00:00Z')

function doc(keys: unknown[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ keys, ...extra })
}

function x509Key(ca: DevCa): Record<string, unknown> {
  return JSON.parse(spiffeBundleDocument({ x509Authorities: [ca] })).keys[0]
}

function reasonOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof SpiffeError) return `${err.code}/${err.reason}`
    throw err
  }
  return 'accepted'
}

t.test('parses X.509 roots, JWT keys, sequence and refresh hint, and round-trips', async (t) => {
  const json = spiffeBundleDocument({
    x509Authorities: [caOld, caNew],
    jwtIssuers: [jwtA, jwtB],
    sequence: 7,
    refreshHintSeconds: 300,
  })
  const bundle = SpiffeBundle.parse(td, json)
  t.equal(bundle.trustDomain, td)
  t.same(
    bundle.x509.authorities.map((c) => c.fingerprint256),
    [caOld.root.fingerprint256, caNew.root.fingerprint256],
  )
  t.equal(bundle.x509.trustDomain, td)
  t.same([...bundle.jwt.authorities.keys()], ['jwt-a', 'jwt-b'])
  t.equal(bundle.sequence, 7n)
  t.equal(bundle.refreshHintSeconds, 300)
  t.equal(bundle.isEmpty, false)

  const again = SpiffeBundle.parse(td, bundle.toJson())
  t.ok(again.jwt.equals(bundle.jwt))
  t.ok(again.x509.equals(bundle.x509))
  t.equal(again.sequence, 7n)
  t.equal(again.refreshHintSeconds, 300)
  const written = JSON.parse(bundle.toJson())
  t.same(
    written.keys.map((k: Record<string, unknown>) => k.use),
    ['x509-svid', 'x509-svid', 'jwt-svid', 'jwt-svid'],
  )
  t.notOk(written.keys[0].kid, 'X.509 entries carry no kid')
})

t.test('the JWT part validates tokens of its trust domain', async (t) => {
  const bundle = SpiffeBundle.parse(td, spiffeBundleDocument({ jwtIssuers: [jwtA] }))
  const token = jwtA.issue({ spiffeId: 'spiffe://example.org/w', audience: 'x', now: NOW })
  t.equal(
    JwtSvid.parseAndValidate(token, bundle.jwt, 'x', { now: NOW }).id.toString(),
    'spiffe://example.org/w',
  )
})

t.test('[C38] SPIFFE bundle JWKs without use "jwt-svid" are ignored', async (t) => {
  const plain = jwtA.jwk()
  const bundle = SpiffeBundle.parse(
    td,
    doc([
      plain,
      { ...jwtB.jwk(), use: 'JWT-SVID' },
      { ...jwtB.jwk(), kid: 'sig', use: 'sig' },
      { ...jwtB.jwk(), kid: 'jwt-b', use: 'jwt-svid' },
    ]),
  )
  t.same([...bundle.jwt.authorities.keys()], ['jwt-b'])
  const token = jwtA.issue({ spiffeId: 'spiffe://example.org/w', audience: 'x', now: NOW })
  t.equal(
    reasonOf(() => JwtSvid.parseAndValidate(token, bundle.jwt, 'x', { now: NOW })),
    'SPIFFE_JWT_INVALID/UNKNOWN_KID',
  )
})

t.test(
  '[C39] a document without keys is an error; keys: [] is a trust domain that trusts nothing',
  async (t) => {
    t.equal(
      reasonOf(() => SpiffeBundle.parse(td, '{}')),
      'SPIFFE_BUNDLE_INVALID/MISSING_KEYS',
    )
    t.equal(
      reasonOf(() => SpiffeBundle.parse(td, '{"spiffe_sequence": 1}')),
      'SPIFFE_BUNDLE_INVALID/MISSING_KEYS',
    )
    t.equal(
      reasonOf(() => SpiffeBundle.parse(td, '{"keys": null}')),
      'SPIFFE_BUNDLE_INVALID/MISSING_KEYS',
    )
    const empty = SpiffeBundle.parse(td, '{"keys": [], "spiffe_sequence": 9}')
    t.equal(empty.isEmpty, true)
    t.equal(empty.x509.authorities.length, 0)
    t.equal(empty.jwt.authorities.size, 0)
    t.equal(empty.sequence, 9n)
    const token = jwtA.issue({ spiffeId: 'spiffe://example.org/w', audience: 'x', now: NOW })
    t.equal(
      reasonOf(() => JwtSvid.parseAndValidate(token, empty.jwt, 'x', { now: NOW })),
      'SPIFFE_JWT_INVALID/UNKNOWN_KID',
    )
  },
)

t.test('[C39] entries of unknown kty or use are ignored, the rest is kept', async (t) => {
  const okp = { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' }
  const bundle = SpiffeBundle.parse(
    td,
    doc([
      { kty: 'XYZ', use: 'jwt-svid', kid: 'future' },
      { kty: 'oct', use: 'jwt-svid', kid: 'hmac', k: 'c2VjcmV0' },
      { ...okp, use: 'jwt-svid', kid: 'ed' },
      { ...jwtA.jwk(), crv: 'secp256k1', use: 'jwt-svid', kid: 'k1' },
      { ...x509Key(caOld), kty: 'XYZ' },
      { ...jwtA.jwk(), use: 'wit-svid' },
      { ...jwtA.jwk(), use: 'enc' },
      jwtA.jwk({ withUse: true }),
      x509Key(caNew),
    ]),
  )
  t.same([...bundle.jwt.authorities.keys()], ['jwt-a'])
  t.same(
    bundle.x509.authorities.map((c) => c.fingerprint256),
    [caNew.root.fingerprint256],
  )
})

t.test(
  '[C39] x509-svid entries: no or empty x5c is ignored, only the first certificate counts',
  async (t) => {
    const key = x509Key(caOld)
    const bundle = SpiffeBundle.parse(
      td,
      doc([
        { ...key, x5c: undefined },
        { ...key, x5c: [] },
        { ...key, x5c: [caNew.root.raw.toString('base64'), caOld.root.raw.toString('base64')] },
        key,
        key,
      ]),
    )
    t.same(
      bundle.x509.authorities.map((c) => c.fingerprint256),
      [caNew.root.fingerprint256, caOld.root.fingerprint256],
      'first x5c element of each entry, duplicates once',
    )
  },
)

t.test('[C39] spiffe_sequence above 2^53 is read and written exactly', async (t) => {
  for (const seq of [9007199254740993n, 18446744073709551615n, 123456789012345678901234567890n]) {
    const bundle = SpiffeBundle.parse(td, `{"keys": [], "spiffe_sequence": ${seq}}`)
    t.equal(bundle.sequence, seq)
    t.match(bundle.toJson(), `"spiffe_sequence":${seq}}`)
    t.equal(SpiffeBundle.parse(td, bundle.toJson()).sequence, seq)
  }
  t.equal(
    SpiffeBundle.parse(td, spiffeBundleDocument({ sequence: 2n ** 64n - 1n })).sequence,
    18446744073709551615n,
  )
})

t.test('[C39] duplicate trust domains in a bundle map are rejected', async (t) => {
  const one = spiffeBundleDocument({ jwtIssuers: [jwtA] })
  const two = spiffeBundleDocument({ x509Authorities: [caOld] })
  const cases: Array<[string, string]> = [
    [
      'same key twice',
      spiffeBundleMapDocument([
        ['example.org', one],
        ['example.org', two],
      ]),
    ],
    [
      'bare name and ID',
      spiffeBundleMapDocument([
        ['example.org', one],
        ['spiffe://example.org', two],
      ]),
    ],
    ['duplicates in the plain form', `{"example.org":${one},"example.org":${two}}`],
    ['escaped duplicate', `{"trust_domains":{"example.org":${one},"example\\u002eorg":${two}}}`],
  ]
  for (const [name, json] of cases) {
    t.match(
      reasonOf(() => parseSpiffeBundleMap(json)),
      /^SPIFFE_BUNDLE_INVALID\/DUPLICATE_/,
      name,
    )
  }
})

t.test('bundle maps: both forms, trust domain keys checked, per-bundle refresh hints dropped', async (t) => {
  const a = spiffeBundleDocument({ jwtIssuers: [jwtA], sequence: 3, refreshHintSeconds: 60 })
  const b = spiffeBundleDocument({ x509Authorities: [caNew] })
  for (const json of [
    spiffeBundleMapDocument([
      ['example.org', a],
      ['spiffe://other.org', b],
    ]),
    `{"example.org":${a},"other.org":${b}}`,
  ]) {
    const map = parseSpiffeBundleMap(json)
    t.same([...map.keys()], ['example.org', 'other.org'])
    const ex = map.get('example.org')!
    t.equal(ex.trustDomain.name, 'example.org')
    t.equal(ex.sequence, 3n)
    t.equal(ex.refreshHintSeconds, undefined, 'a map bundle refresh hint never drives refresh')
    t.equal(map.get('other.org')!.x509.authorities.length, 1)
  }
  t.equal(parseSpiffeBundleMap('{"trust_domains": {}}').size, 0)
  const cases: Array<[string, string]> = [
    ['not an object', '[]'],
    ['trust_domains not an object', '{"trust_domains": []}'],
    ['bad trust domain', spiffeBundleMapDocument([['Example.org', a]])],
    ['workload ID as key', spiffeBundleMapDocument([['spiffe://example.org/w', a]])],
    ['bundle without keys', spiffeBundleMapDocument([['example.org', '{}']])],
  ]
  const reasons = ['MALFORMED', 'MALFORMED', 'BAD_TRUST_DOMAIN', 'BAD_TRUST_DOMAIN', 'MISSING_KEYS']
  cases.forEach(([name, json], i) => {
    t.equal(
      reasonOf(() => parseSpiffeBundleMap(json)),
      `SPIFFE_BUNDLE_INVALID/${reasons[i]}`,
      name,
    )
  })
})

t.test('broken entries of a known use fail the whole document', async (t) => {
  const key = x509Key(caOld)
  const der = caOld.root.raw
  const cases: Array<[string, string, string]> = [
    ['not JSON', '{"keys": [}', 'MALFORMED'],
    ['not an object', '[]', 'MALFORMED'],
    ['keys not an array', '{"keys": {}}', 'MISSING_KEYS'],
    ['key not an object', doc(['x']), 'BAD_KEY'],
    ['kty missing', doc([{ ...jwtA.jwk({ withUse: true }), kty: undefined }]), 'BAD_KEY'],
    ['jwt-svid without kid', doc([{ ...jwtA.jwk({ withUse: true }), kid: undefined }]), 'MISSING_KID'],
    [
      'duplicate kid',
      doc([jwtA.jwk({ withUse: true }), { ...jwtB.jwk({ withUse: true }), kid: 'jwt-a' }]),
      'DUPLICATE_KID',
    ],
    ['jwt key off the curve', doc([{ ...jwtA.jwk({ withUse: true }), y: jwtA.jwk().x }]), 'BAD_KEY'],
    [
      'private jwt key',
      doc([{ ...jwtA.privateKey.export({ format: 'jwk' }), kid: 'p', use: 'jwt-svid' }]),
      'PRIVATE_KEY',
    ],
    ['x5c not an array', doc([{ ...key, x5c: der.toString('base64') }]), 'BAD_X5C'],
    ['x5c base64url', doc([{ ...key, x5c: [der.toString('base64url')] }]), 'BAD_X5C'],
    ['x5c not a certificate', doc([{ ...key, x5c: [Buffer.from('hello').toString('base64')] }]), 'BAD_X5C'],
    [
      'x5c with trailing bytes',
      doc([{ ...key, x5c: [Buffer.concat([der, Buffer.from([0])]).toString('base64')] }]),
      'BAD_X5C',
    ],
    ['x5c element a number', doc([{ ...key, x5c: [1] }]), 'BAD_X5C'],
    ['duplicate member', '{"keys": [], "keys": []}', 'DUPLICATE_KEY'],
    ['negative sequence', doc([], { spiffe_sequence: -1 }), 'BAD_SEQUENCE'],
    ['fractional sequence', doc([], { spiffe_sequence: 1.5 }), 'BAD_SEQUENCE'],
    ['string sequence', doc([], { spiffe_sequence: '1' }), 'BAD_SEQUENCE'],
    ['fractional refresh hint', doc([], { spiffe_refresh_hint: 1.5 }), 'BAD_REFRESH_HINT'],
    ['negative refresh hint', doc([], { spiffe_refresh_hint: -5 }), 'BAD_REFRESH_HINT'],
    ['too large', `{"keys":[],"x":"${'a'.repeat(1024 * 1024)}"}`, 'TOO_LARGE'],
    ['too deep', `{"keys":[],"x":${'['.repeat(64)}${']'.repeat(64)}}`, 'TOO_DEEP'],
  ]
  for (const [name, json, reason] of cases) {
    t.equal(
      reasonOf(() => SpiffeBundle.parse(td, json)),
      `SPIFFE_BUNDLE_INVALID/${reason}`,
      name,
    )
  }
})

t.test('from() assembles a bundle and refuses parts of another trust domain', async (t) => {
  const jwt = SpiffeBundle.parse(td, spiffeBundleDocument({ jwtIssuers: [jwtA] })).jwt
  const bundle = SpiffeBundle.from(td, { jwt, sequence: 1n })
  t.equal(bundle.x509.authorities.length, 0)
  t.equal(bundle.jwt, jwt)
  t.equal(JSON.parse(bundle.toJson()).spiffe_sequence, 1)
  const other = SpiffeBundle.parse(TrustDomain.parse('other.org'), '{"keys": []}')
  t.throws(() => SpiffeBundle.from(td, { jwt: other.jwt }), { code: 'SPIFFE_ARGUMENT_INVALID' })
  t.throws(() => SpiffeBundle.from(td, { sequence: -1n }), { code: 'SPIFFE_ARGUMENT_INVALID' })
  t.throws(() => SpiffeBundle.from(td, { refreshHintSeconds: 0.5 }), { code: 'SPIFFE_ARGUMENT_INVALID' })
})
