import { createHmac, verify } from 'node:crypto'
import t from 'tap'
import { JwtBundle, JwtSvid, TrustDomain } from 'workload-api-client'
import { DevJwtIssuer } from '../src/index.ts'

const NOW = new Date('2030-01-01T00:00:00Z')

function decode(token: string): {
  header: Record<string, unknown>
  claims: Record<string, unknown>
  sig: Buffer
} {
  const [h, p, s] = token.split('.') as [string, string, string]
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString()),
    claims: JSON.parse(Buffer.from(p, 'base64url').toString()),
    sig: Buffer.from(s, 'base64url'),
  }
}

t.test('issues SPIRE-shaped tokens for each key type, valid under their own JWKS', async (t) => {
  const cases = [
    ['ec-p256', 'ES256', 'P-256', 64],
    ['ec-p384', 'ES384', 'P-384', 96],
    ['rsa-2048', 'RS256', undefined, 256],
  ] as const
  for (const [keyType, alg, crv, sigBytes] of cases) {
    const issuer = DevJwtIssuer.create({ trustDomain: 'example.org', keyType })
    t.equal(issuer.alg, alg)
    t.match(issuer.kid, /^[A-Za-z0-9_-]{32}$/, 'a random 32-character kid, like SPIRE')
    const token = issuer.issue({
      spiffeId: 'spiffe://example.org/w',
      audience: 'svc',
      now: NOW,
      ttlMs: 120_000,
    })
    const { header, claims, sig } = decode(token)
    t.same(header, { alg, kid: issuer.kid, typ: 'JWT' })
    t.same(claims, {
      sub: 'spiffe://example.org/w',
      aud: 'svc',
      exp: NOW.getTime() / 1000 + 120,
      iat: NOW.getTime() / 1000,
    })
    t.equal(sig.length, sigBytes)
    const jwk = issuer.jwks().keys[0]!
    t.equal(jwk.kty, crv === undefined ? 'RSA' : 'EC')
    t.equal(jwk.crv, crv)
    const bundle = JwtBundle.parseJwks(TrustDomain.parse('example.org'), JSON.stringify(issuer.jwks()))
    t.equal(
      JwtSvid.parseAndValidate(token, bundle, 'svc', { now: NOW }).id.toString(),
      'spiffe://example.org/w',
    )
  }
})

t.test('jwks has no use by default and use "jwt-svid" when asked; never private members', async (t) => {
  const issuer = DevJwtIssuer.create({ trustDomain: 'example.org', kid: 'k1' })
  const plain = issuer.jwks().keys
  t.equal(plain.length, 1)
  t.equal(plain[0]!.kid, 'k1')
  t.notOk('use' in plain[0]!)
  t.notOk('d' in plain[0]!)
  t.equal(issuer.jwks({ withUse: true }).keys[0]!.use, 'jwt-svid')
})

t.test('audience is written as given: string or array', async (t) => {
  const issuer = DevJwtIssuer.create({ trustDomain: 'example.org' })
  t.equal(decode(issuer.issue({ spiffeId: 'spiffe://example.org/w', audience: 'a' })).claims.aud, 'a')
  t.same(decode(issuer.issue({ spiffeId: 'spiffe://example.org/w', audience: ['a'] })).claims.aud, ['a'])
  t.same(decode(issuer.issue({ spiffeId: 'spiffe://example.org/w', audience: ['a', 'b'] })).claims.aud, [
    'a',
    'b',
  ])
})

t.test('header and claim overrides replace, add and remove members', async (t) => {
  const issuer = DevJwtIssuer.create({ trustDomain: 'example.org', kid: 'k1' })
  const { header, claims } = decode(
    issuer.issue({
      spiffeId: 'spiffe://example.org/w',
      audience: 'a',
      header: { kid: undefined, typ: 'foo', extra: 1 },
      claims: { exp: undefined, aud: undefined, nbf: 5, sub: 'spiffe://other.org/x' },
    }),
  )
  t.same(header, { alg: 'ES256', typ: 'foo', extra: 1 })
  t.same(Object.keys(claims).sort(), ['iat', 'nbf', 'sub'])
  t.equal(claims.sub, 'spiffe://other.org/x')
  const raw = issuer.issue({
    spiffeId: 'spiffe://example.org/w',
    audience: 'a',
    rawHeader: '{"alg":"ES256","alg":"ES256"}',
    rawClaims: '{"a":1,"a":2}',
  })
  const [h, p] = raw.split('.') as [string, string]
  t.equal(Buffer.from(h, 'base64url').toString(), '{"alg":"ES256","alg":"ES256"}')
  t.equal(Buffer.from(p, 'base64url').toString(), '{"a":1,"a":2}')
})

t.test('crafts broken signatures on request', async (t) => {
  const issuer = DevJwtIssuer.create({ trustDomain: 'example.org' })
  const base = { spiffeId: 'spiffe://example.org/w', audience: 'a' }

  const none = issuer.issue({ ...base, header: { alg: 'none' } })
  t.ok(none.endsWith('.'), 'alg none has an empty signature')

  const hs = issuer.issue({ ...base, header: { alg: 'HS256' } })
  const [h, p, s] = hs.split('.') as [string, string, string]
  const secret = issuer.publicKey.export({ type: 'spki', format: 'pem' })
  t.equal(
    s,
    createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url'),
    'HS256 keyed by the public key',
  )

  const der = issuer.issue({ ...base, signatureEncoding: 'der' })
  const [dh, dp, ds] = der.split('.') as [string, string, string]
  const sig = Buffer.from(ds, 'base64url')
  t.equal(sig[0], 0x30, 'a DER SEQUENCE')
  t.ok(verify('sha256', Buffer.from(`${dh}.${dp}`), { key: issuer.publicKey, dsaEncoding: 'der' }, sig))

  // A header alg the key cannot produce is signed with the key's own algorithm.
  const mislabelled = issuer.issue({ ...base, header: { alg: 'RS256' } })
  const [mh, mp, ms] = mislabelled.split('.') as [string, string, string]
  t.ok(
    verify(
      'sha256',
      Buffer.from(`${mh}.${mp}`),
      { key: issuer.publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(ms, 'base64url'),
    ),
  )
})

t.test('an issuer of another trust domain can sign a subject it does not own', async (t) => {
  const b = DevJwtIssuer.create({ trustDomain: 'b.example', kid: 'shared' })
  const token = b.issue({ spiffeId: 'spiffe://a.example/x', audience: 'a' })
  t.equal(decode(token).claims.sub, 'spiffe://a.example/x')
  t.equal(decode(token).header.kid, 'shared')
})

t.test('rejects an invalid trust domain or key type', async (t) => {
  t.throws(() => DevJwtIssuer.create({ trustDomain: 'Bad.Example' }), { code: 'SPIFFE_ID_INVALID' })
  t.throws(() => DevJwtIssuer.create({ trustDomain: 'example.org', keyType: 'dsa' as never }), {
    code: 'SPIFFE_ARGUMENT_INVALID',
  })
})
