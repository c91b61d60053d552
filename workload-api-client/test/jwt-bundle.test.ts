import { generateKeyPairSync } from 'node:crypto'
import { DevJwtIssuer } from '@svidecar/certs'
import t from 'tap'
import { BundleSet, JwtBundle, jwtAuthority, jwtBundleSource, TrustDomain } from '../src/index.ts'

const td = TrustDomain.parse('example.org')
const p256 = DevJwtIssuer.create({ trustDomain: 'example.org', kid: 'k-p256' })
const p384 = DevJwtIssuer.create({ trustDomain: 'example.org', keyType: 'ec-p384', kid: 'k-p384' })
const rsa = DevJwtIssuer.create({ trustDomain: 'example.org', keyType: 'rsa-2048', kid: 'k-rsa' })
const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey.export({ format: 'jwk' })

function jwks(...keys: object[]): string {
  return JSON.stringify({ keys })
}

t.test('[C38] Workload API JWKS without use is accepted: EC P-256/P-384/P-521 and RSA', async (t) => {
  const doc = jwks(p256.jwk(), p384.jwk(), rsa.jwk(), { ...p521, kid: 'k-p521' })
  for (const input of [doc, new TextEncoder().encode(doc)]) {
    const bundle = JwtBundle.parseJwks(td, input)
    t.equal(bundle.trustDomain, td)
    t.same([...bundle.authorities.keys()], ['k-p256', 'k-p384', 'k-rsa', 'k-p521'])
    const a = bundle.findAuthority('k-p256')
    t.ok(a?.publicKey.equals(p256.publicKey), 'the imported key is the issuer key')
    t.equal(a?.publicKey.type, 'public')
    t.equal(bundle.findAuthority('nope'), undefined)
    t.ok(Object.isFrozen(a), 'authorities are immutable')
  }
})

t.test('a use member, if present, does not matter in a Workload API JWKS', async (t) => {
  const bundle = JwtBundle.parseJwks(td, jwks(p256.jwk({ withUse: true }), { ...rsa.jwk(), use: 'sig' }))
  t.equal(bundle.size, 2)
})

t.test('parseJwks rejects malformed documents and keys', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['not JSON', '{"keys": [', 'MALFORMED'],
    ['no keys member', '{}', 'MISSING_KEYS'],
    ['keys not an array', '{"keys": {}}', 'MISSING_KEYS'],
    ['top level array', '[]', 'MISSING_KEYS'],
    ['duplicate JSON member', '{"keys": [], "keys": []}', 'DUPLICATE_KEY'],
    ['key not an object', '{"keys": [1]}', 'BAD_KEY'],
    ['missing kid', jwks({ ...p256.jwk(), kid: undefined }), 'MISSING_KID'],
    ['empty kid', jwks({ ...p256.jwk(), kid: '' }), 'MISSING_KID'],
    ['kid not a string', jwks({ ...p256.jwk(), kid: 7 }), 'MISSING_KID'],
    ['duplicate kid', jwks(p256.jwk(), { ...p384.jwk(), kid: p256.kid }), 'DUPLICATE_KID'],
    ['EC without y', jwks({ ...p256.jwk(), y: undefined }), 'BAD_KEY'],
    ['EC point off the curve', jwks({ ...p256.jwk(), y: p256.jwk().x }), 'BAD_KEY'],
    ['RSA without e', jwks({ ...rsa.jwk(), e: undefined }), 'BAD_KEY'],
    ['RSA too short', jwks({ ...smallRsa(), kid: 'small' }), 'BAD_KEY'],
    ['private EC key', jwks({ ...p256.privateKey.export({ format: 'jwk' }), kid: 'priv' }), 'PRIVATE_KEY'],
    ['private RSA key', jwks({ ...rsa.privateKey.export({ format: 'jwk' }), kid: 'priv' }), 'PRIVATE_KEY'],
    // go-spiffe's jwtbundle.Parse fails on keys it cannot use; so does the Workload API path.
    ['unknown kty', jwks({ kty: 'XYZ', kid: 'x' }), 'UNSUPPORTED_KEY'],
    ['symmetric key', jwks({ kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }), 'UNSUPPORTED_KEY'],
    ['Ed25519 key', jwks({ ...ed25519(), kid: 'ed' }), 'UNSUPPORTED_KEY'],
    ['unknown curve', jwks({ ...p256.jwk(), crv: 'secp256k1' }), 'UNSUPPORTED_KEY'],
  ]
  for (const [name, doc, reason] of cases) {
    t.throws(() => JwtBundle.parseJwks(td, doc), { code: 'SPIFFE_BUNDLE_INVALID', reason }, name)
  }
  t.throws(() => JwtBundle.parseJwks(td, `{"keys":[],"pad":"${'x'.repeat(1024 * 1024)}"}`), {
    code: 'SPIFFE_BUNDLE_INVALID',
    reason: 'TOO_LARGE',
  })
})

t.test('an empty key list is a bundle that trusts no token', async (t) => {
  const bundle = JwtBundle.parseJwks(td, '{"keys": []}')
  t.equal(bundle.size, 0)
  t.equal(bundle.findAuthority('anything'), undefined)
})

t.test('toJwks round-trips and equals compares keys, not objects', async (t) => {
  const a = JwtBundle.parseJwks(td, jwks(p256.jwk(), rsa.jwk()))
  const exported = a.toJwks()
  t.notOk(
    exported.keys.some((k) => 'use' in k),
    'Workload API style: no use',
  )
  const b = JwtBundle.parseJwks(td, JSON.stringify(exported))
  t.ok(a.equals(b))
  t.ok(b.equals(a))
  t.notOk(a.equals(JwtBundle.parseJwks(td, jwks(p256.jwk()))))
  t.notOk(a.equals(JwtBundle.parseJwks(td, jwks(p256.jwk(), { ...p384.jwk(), kid: 'k-rsa' }))))
  t.notOk(a.equals(JwtBundle.parseJwks(TrustDomain.parse('other.org'), jwks(p256.jwk(), rsa.jwk()))))
  t.notOk(a.equals(undefined))
  exported.keys[0]!.kid = 'mutated'
  t.ok(a.findAuthority('k-p256'), 'exported JWKs are copies')
})

t.test('fromAuthorities builds frozen authorities and rejects bad ones', async (t) => {
  const own = jwtAuthority('k1', p256.publicKey)
  const foreign = { kid: 'k2', publicKey: rsa.publicKey, jwk: { kty: 'made-up' } }
  const bundle = JwtBundle.fromAuthorities(td, [own, foreign])
  t.equal(bundle.findAuthority('k1'), own, 'an authority built here keeps its identity')
  const k2 = bundle.findAuthority('k2')
  t.not(k2, foreign, 'a foreign object is rebuilt')
  t.equal(k2?.jwk.kty, 'RSA', 'the JWK is derived from the key')
  t.ok(Object.isFrozen(k2))

  t.throws(() => JwtBundle.fromAuthorities(td, [own, jwtAuthority('k1', rsa.publicKey)]), {
    code: 'SPIFFE_BUNDLE_INVALID',
    reason: 'DUPLICATE_KID',
  })
  t.throws(() => jwtAuthority('', p256.publicKey), { code: 'SPIFFE_ARGUMENT_INVALID' })
  t.throws(() => jwtAuthority('k', p256.privateKey), { code: 'SPIFFE_ARGUMENT_INVALID' })
  const ed = generateKeyPairSync('ed25519').publicKey
  t.throws(() => jwtAuthority('k', ed), { code: 'SPIFFE_ARGUMENT_INVALID' })
})

t.test('a bundle and a BundleSet serve as JwtBundleSources, by trust domain only', async (t) => {
  const other = TrustDomain.parse('other.org')
  const a = JwtBundle.parseJwks(td, jwks(p256.jwk()))
  const b = JwtBundle.parseJwks(other, jwks(rsa.jwk()))
  t.equal(a.getJwtBundleForTrustDomain(td), a)
  t.equal(a.getJwtBundleForTrustDomain(other), undefined)
  const source = jwtBundleSource(new BundleSet([a, b]))
  t.equal(source.getJwtBundleForTrustDomain(td), a)
  t.equal(source.getJwtBundleForTrustDomain(other), b)
  t.equal(source.getJwtBundleForTrustDomain(TrustDomain.parse('third.org')), undefined)
})

function smallRsa(): object {
  return generateKeyPairSync('rsa', { modulusLength: 512 }).publicKey.export({ format: 'jwk' })
}

function ed25519(): object {
  return generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' })
}
