import { generateKeyPairSync, sign } from 'node:crypto'
import { inspect } from 'node:util'
import { DevJwtIssuer } from '@svidecar/certs'
import t from 'tap'
import {
  BundleSet,
  JwtBundle,
  type JwtBundleSource,
  JwtSvid,
  jwtAuthority,
  jwtBundleSource,
  SpiffeError,
  TrustDomain,
} from '../src/index.ts'

const tdA = TrustDomain.parse('a.example')
const tdB = TrustDomain.parse('b.example')
const issuerA = DevJwtIssuer.create({ trustDomain: 'a.example', kid: 'a-key' })
const issuerB = DevJwtIssuer.create({ trustDomain: 'b.example', kid: 'b-key' })
const rsaA = DevJwtIssuer.create({ trustDomain: 'a.example', keyType: 'rsa-2048', kid: 'a-rsa' })
const p384A = DevJwtIssuer.create({ trustDomain: 'a.example', keyType: 'ec-p384', kid: 'a-p384' })

function bundleOf(td: TrustDomain, ...issuers: DevJwtIssuer[]): JwtBundle {
  return JwtBundle.parseJwks(td, JSON.stringify({ keys: issuers.map((i) => i.jwk()) }))
}

const bundleA = bundleOf(tdA, issuerA, rsaA, p384A)
const bundleB = bundleOf(tdB, issuerB)
const bundles = jwtBundleSource(new BundleSet([bundleA, bundleB]))
const SUB = 'spiffe://a.example/agent'
const NOW = new Date('2030-01-01T00:00:00Z')

function issue(opts: Partial<Parameters<DevJwtIssuer['issue']>[0]> = {}, issuer = issuerA): string {
  return issuer.issue({ spiffeId: SUB, audience: 'mcp', now: NOW, ...opts })
}

function validate(
  token: string,
  source: JwtBundleSource = bundles,
  audience: string | string[] = 'mcp',
  now = NOW,
) {
  return JwtSvid.parseAndValidate(token, source, audience, { now })
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

t.test('a valid ES256 token validates and exposes its identity and claims', async (t) => {
  const token = issue({ claims: { custom: { nested: [1, 2] } } })
  const svid = validate(token)
  t.equal(svid.id.toString(), SUB)
  t.equal(svid.id.trustDomain, tdA)
  t.equal(svid.token, token)
  t.same(svid.audience, ['mcp'])
  t.equal(svid.expiry.getTime(), NOW.getTime() + 5 * 60 * 1000)
  t.equal(svid.issuedAt?.getTime(), NOW.getTime())
  t.equal(svid.hint, '')
  t.same(svid.claims.custom, { nested: [1, 2] })
  t.ok(Object.isFrozen(svid.claims) && Object.isFrozen(svid.claims.custom), 'claims are deeply frozen')
})

t.test('[C34] aud is accepted as a string and as an array; any expected audience matches', async (t) => {
  t.same(validate(issue({ audience: 'mcp' })).audience, ['mcp'])
  t.same(validate(issue({ audience: ['other', 'mcp'] })).audience, ['other', 'mcp'])
  t.same(validate(issue({ audience: ['mcp'] }), bundles, ['x', 'mcp']).audience, ['mcp'])
  t.same(validate(issue({ audience: 'mcp' }), bundles, ['mcp', 'y']).audience, ['mcp'])
})

t.test('[C34] rejects forbidden algorithms, types, and missing kid', async (t) => {
  const cases: Array<[string, Partial<Parameters<DevJwtIssuer['issue']>[0]>, string]> = [
    ['alg none', { header: { alg: 'none' } }, 'BAD_ALG'],
    ['alg HS256 keyed with the public key', { header: { alg: 'HS256' } }, 'BAD_ALG'],
    ['alg HS512', { header: { alg: 'HS512' } }, 'BAD_ALG'],
    ['alg EdDSA', { header: { alg: 'EdDSA' } }, 'BAD_ALG'],
    ['alg lowercase', { header: { alg: 'es256' } }, 'BAD_ALG'],
    ['alg missing', { header: { alg: undefined } }, 'BAD_ALG'],
    ['alg not a string', { header: { alg: ['ES256'] } }, 'BAD_ALG'],
    ['typ foo', { header: { typ: 'foo' } }, 'BAD_TYP'],
    ['typ lowercase jwt', { header: { typ: 'jwt' } }, 'BAD_TYP'],
    ['typ not a string', { header: { typ: 1 } }, 'BAD_TYP'],
    ['typ null', { header: { typ: null } }, 'BAD_TYP'],
    ['kid missing', { header: { kid: undefined } }, 'MISSING_KID'],
    ['kid empty', { header: { kid: '' } }, 'MISSING_KID'],
    ['kid not a string', { header: { kid: 1 } }, 'MISSING_KID'],
    ['crit present', { header: { crit: ['exp'], exp: 1 } }, 'UNSUPPORTED_CRIT'],
  ]
  for (const [name, opts, reason] of cases) {
    t.equal(
      reasonOf(() => validate(issue(opts))),
      `SPIFFE_JWT_INVALID/${reason}`,
      name,
    )
  }
  for (const typ of ['JWT', 'JOSE', undefined]) {
    t.equal(
      reasonOf(() => validate(issue({ header: { typ } }))),
      'accepted',
      `typ ${typ}`,
    )
  }
})

t.test('[C34] rejects missing or malformed sub, exp and aud', async (t) => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['aud missing', { aud: undefined }, 'MISSING_AUD'],
    ['aud empty array', { aud: [] }, 'MISSING_AUD'],
    ['aud a number', { aud: 5 }, 'BAD_CLAIM'],
    ['aud array with a number', { aud: ['mcp', 5] }, 'BAD_CLAIM'],
    ['exp missing', { exp: undefined }, 'MISSING_EXP'],
    ['exp a string', { exp: '1893456300' }, 'BAD_CLAIM'],
    ['exp beyond Date range', { exp: 1e300 }, 'BAD_CLAIM'],
    ['nbf a string', { nbf: 'soon' }, 'BAD_CLAIM'],
    ['iat null', { iat: null }, 'BAD_CLAIM'],
    ['sub missing', { sub: undefined }, 'MISSING_SUB'],
    ['sub empty', { sub: '' }, 'MISSING_SUB'],
    ['sub not a string', { sub: 42 }, 'BAD_SUB'],
    ['sub not a SPIFFE ID', { sub: 'https://a.example/agent' }, 'BAD_SUB'],
    ['sub with dot segment', { sub: 'spiffe://a.example/x/../admin' }, 'BAD_SUB'],
    ['sub uppercase trust domain', { sub: 'spiffe://A.example/agent' }, 'BAD_SUB'],
  ]
  for (const [name, claims, reason] of cases) {
    t.equal(
      reasonOf(() => validate(issue({ claims }))),
      `SPIFFE_JWT_INVALID/${reason}`,
      name,
    )
  }
})

t.test('[C34] rejects an audience without the expected one', async (t) => {
  t.equal(
    reasonOf(() => validate(issue({ audience: 'llm' }))),
    'SPIFFE_JWT_INVALID/AUDIENCE_MISMATCH',
  )
  t.equal(
    reasonOf(() => validate(issue({ audience: ['llm', 'db'] }))),
    'SPIFFE_JWT_INVALID/AUDIENCE_MISMATCH',
  )
  t.equal(
    reasonOf(() => validate(issue({ audience: 'MCP' }))),
    'SPIFFE_JWT_INVALID/AUDIENCE_MISMATCH',
    'audiences compare exactly',
  )
  t.throws(() => validate(issue(), bundles, []), { code: 'SPIFFE_ARGUMENT_INVALID' })
  t.throws(() => validate(issue(), bundles, ''), { code: 'SPIFFE_ARGUMENT_INVALID' })
})

t.test('[C34] expiry, not-before and issued-at honour the leeway on an injected clock', async (t) => {
  const token = issue({ ttlMs: 60_000 })
  const exp = NOW.getTime() + 60_000
  const at = (ms: number, leewayMs?: number) =>
    reasonOf(() =>
      JwtSvid.parseAndValidate(token, bundles, 'mcp', {
        now: new Date(ms),
        ...(leewayMs === undefined ? {} : { leewayMs }),
      }),
    )
  t.equal(at(exp - 1), 'accepted')
  t.equal(at(exp + 59_000), 'accepted', 'within the default 60 s leeway')
  t.equal(at(exp + 60_000), 'accepted', 'exactly at the leeway edge')
  t.equal(at(exp + 60_001), 'SPIFFE_JWT_INVALID/EXPIRED')
  t.equal(at(exp + 1, 0), 'SPIFFE_JWT_INVALID/EXPIRED', 'no leeway')
  t.equal(at(exp + 10_000, 30_000), 'accepted', 'custom leeway')

  const nbf = issue({ claims: { nbf: NOW.getTime() / 1000 + 120 } })
  t.equal(
    reasonOf(() => validate(nbf)),
    'SPIFFE_JWT_INVALID/NOT_YET_VALID',
  )
  t.equal(
    reasonOf(() => validate(nbf, bundles, 'mcp', new Date(NOW.getTime() + 60_000))),
    'accepted',
  )

  const future = issue({ now: new Date(NOW.getTime() + 120_000) })
  t.equal(
    reasonOf(() => validate(future)),
    'SPIFFE_JWT_INVALID/ISSUED_IN_FUTURE',
  )
  const slightlyAhead = issue({ now: new Date(NOW.getTime() + 30_000) })
  t.equal(
    reasonOf(() => validate(slightlyAhead)),
    'accepted',
    'small clock skew is tolerated',
  )
  t.throws(() => JwtSvid.parseAndValidate(token, bundles, 'mcp', { now: NOW, leewayMs: -1 }), {
    code: 'SPIFFE_ARGUMENT_INVALID',
  })
})

t.test('[C35] a token whose subject trust domain has no JWT bundle is rejected', async (t) => {
  const onlyB = jwtBundleSource(new BundleSet([bundleB]))
  t.throws(() => validate(issue(), onlyB), { code: 'SPIFFE_BUNDLE_NOT_FOUND' })
  t.throws(() => validate(issue({ spiffeId: 'spiffe://c.example/x' })), { code: 'SPIFFE_BUNDLE_NOT_FOUND' })
})

t.test("[C35] a token signed by trust domain B's key claiming a subject in A is rejected", async (t) => {
  // B's own kid is unknown in A's bundle, though B's bundle is loaded.
  const forged = issuerB.issue({ spiffeId: SUB, audience: 'mcp', now: NOW })
  t.equal(
    reasonOf(() => validate(forged)),
    'SPIFFE_JWT_INVALID/UNKNOWN_KID',
  )
  // B reusing A's kid does not help: the key under that kid in A's bundle is A's.
  const sameKid = DevJwtIssuer.create({ trustDomain: 'b.example', kid: issuerA.kid })
  const withBoth = jwtBundleSource(new BundleSet([bundleA, bundleOf(tdB, sameKid)]))
  const forged2 = sameKid.issue({ spiffeId: SUB, audience: 'mcp', now: NOW })
  t.equal(
    reasonOf(() => validate(forged2, withBoth)),
    'SPIFFE_JWT_INVALID/BAD_SIGNATURE',
  )
  // B's tokens for its own subjects are fine.
  t.equal(
    validate(
      sameKid.issue({ spiffeId: 'spiffe://b.example/x', audience: 'mcp', now: NOW }),
      withBoth,
    ).id.toString(),
    'spiffe://b.example/x',
  )
})

t.test('[C36] ES256 signatures are accepted in P1363 form and rejected in DER form', async (t) => {
  t.equal(
    reasonOf(() => validate(issue({ signatureEncoding: 'p1363' }))),
    'accepted',
  )
  t.equal(
    reasonOf(() => validate(issue({ signatureEncoding: 'der' }))),
    'SPIFFE_JWT_INVALID/BAD_SIGNATURE',
  )
  const es384 = (enc: 'p1363' | 'der') => issue({ signatureEncoding: enc }, p384A)
  t.equal(
    reasonOf(() => validate(es384('p1363'))),
    'accepted',
  )
  t.equal(
    reasonOf(() => validate(es384('der'))),
    'SPIFFE_JWT_INVALID/BAD_SIGNATURE',
  )
})

t.test('RS256, RS512, PS256, PS384 and ES384 round-trip', async (t) => {
  const cases: Array<[string, DevJwtIssuer, Record<string, unknown> | undefined]> = [
    ['RS256', rsaA, undefined],
    ['RS512', rsaA, { alg: 'RS512' }],
    ['PS256', rsaA, { alg: 'PS256' }],
    ['PS384', rsaA, { alg: 'PS384' }],
    ['ES384', p384A, undefined],
  ]
  for (const [alg, issuer, header] of cases) {
    const token = issue(header === undefined ? {} : { header }, issuer)
    t.equal(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).alg, alg)
    t.equal(validate(token).id.toString(), SUB, alg)
  }
})

t.test('ES512 on P-521 round-trips (federated trust domains may use it)', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-521' })
  const bundle = JwtBundle.fromAuthorities(tdA, [jwtAuthority('p521', publicKey)])
  const exp = NOW.getTime() / 1000 + 60
  const input = `${b64(JSON.stringify({ alg: 'ES512', kid: 'p521' }))}.${b64(JSON.stringify({ sub: SUB, aud: 'mcp', exp }))}`
  const sig = sign('sha512', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
  t.equal(sig.length, 132)
  t.equal(validate(`${input}.${sig.toString('base64url')}`, bundle).id.toString(), SUB)
  const der = sign('sha512', Buffer.from(input), { key: privateKey, dsaEncoding: 'der' })
  t.equal(
    reasonOf(() => validate(`${input}.${der.toString('base64url')}`, bundle)),
    'SPIFFE_JWT_INVALID/BAD_SIGNATURE',
  )
})

t.test('the key type must match alg', async (t) => {
  const cases: Array<[string, DevJwtIssuer, string]> = [
    ['RS256 header on an EC key', issuerA, 'RS256'],
    ['PS256 header on an EC key', issuerA, 'PS256'],
    ['ES384 header on a P-256 key', issuerA, 'ES384'],
    ['ES256 header on a P-384 key', p384A, 'ES256'],
    ['ES256 header on an RSA key', rsaA, 'ES256'],
  ]
  for (const [name, issuer, alg] of cases) {
    t.equal(
      reasonOf(() => validate(issue({ header: { alg } }, issuer))),
      'SPIFFE_JWT_INVALID/KEY_ALG_MISMATCH',
      name,
    )
  }
  // An RS256 signature relabelled PS256 is the right key type but the wrong scheme.
  const rs = issue({}, rsaA).split('.')
  const header = Buffer.from(JSON.stringify({ alg: 'PS256', kid: rsaA.kid, typ: 'JWT' })).toString(
    'base64url',
  )
  t.equal(
    reasonOf(() => validate(`${header}.${rs[1]}.${rs[2]}`)),
    'SPIFFE_JWT_INVALID/BAD_SIGNATURE',
  )
})

t.test('tampering with any part breaks the signature', async (t) => {
  const [h, p, s] = issue().split('.') as [string, string, string]
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString())
  const otherClaims = Buffer.from(JSON.stringify({ ...claims, sub: 'spiffe://a.example/admin' })).toString(
    'base64url',
  )
  const sig = Buffer.from(s, 'base64url')
  sig[10]! ^= 1
  t.equal(
    reasonOf(() => validate(`${h}.${otherClaims}.${s}`)),
    'SPIFFE_JWT_INVALID/BAD_SIGNATURE',
  )
  t.equal(
    reasonOf(() => validate(`${h}.${p}.${sig.toString('base64url')}`)),
    'SPIFFE_JWT_INVALID/BAD_SIGNATURE',
  )
  t.equal(
    reasonOf(() => validate(`${h}.${p}.`)),
    'SPIFFE_JWT_INVALID/BAD_SIGNATURE',
    'empty signature',
  )
  t.equal(
    reasonOf(() => validate(`${h}.${p}.${sig.subarray(0, 63).toString('base64url')}`)),
    'SPIFFE_JWT_INVALID/BAD_SIGNATURE',
    'short signature',
  )
  t.equal(
    reasonOf(() => validate(`${h}.${p}.${Buffer.alloc(64).toString('base64url')}`)),
    'SPIFFE_JWT_INVALID/BAD_SIGNATURE',
    'all-zero signature',
  )
})

t.test('rejects anything but a strict three-part compact JWS', async (t) => {
  const token = issue()
  const [h, p, s] = token.split('.') as [string, string, string]
  const cases: Array<[string, string, string]> = [
    ['empty', '', 'MALFORMED'],
    ['one part', h, 'MALFORMED'],
    ['two parts', `${h}.${p}`, 'MALFORMED'],
    ['four parts', `${token}.${s}`, 'MALFORMED'],
    ['JWE (five parts)', `${h}.${p}.${s}.${s}.${s}`, 'MALFORMED'],
    [
      'JWS JSON serialization',
      JSON.stringify({ payload: p, signatures: [{ protected: h, signature: s }] }),
      'MALFORMED',
    ],
    ['empty header', `.${p}.${s}`, 'MALFORMED'],
    ['empty payload', `${h}..${s}`, 'MALFORMED'],
    ['padding', `${h}.${p}.${s}==`, 'MALFORMED'],
    ['standard base64 characters', `${h}.${p}.${s.slice(0, -2)}+/`, 'MALFORMED'],
    ['whitespace', ` ${token}`, 'MALFORMED'],
    ['impossible length', `${h}.${p}.${s}AAA`, 'MALFORMED'],
    ['non-canonical last character', `${h}.${p}.${noncanonical(s)}`, 'MALFORMED'],
    ['header not JSON', `${b64('not json')}.${p}.${s}`, 'MALFORMED'],
    ['header an array', `${b64('["ES256"]')}.${p}.${s}`, 'MALFORMED'],
    ['claims not an object', `${h}.${b64('"x"')}.${s}`, 'MALFORMED'],
    [
      'header invalid UTF-8',
      `${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}.${p}.${s}`,
      'MALFORMED',
    ],
    ['too large', `${h}.${'A'.repeat(16 * 1024)}.${s}`, 'TOO_LARGE'],
  ]
  for (const [name, input, reason] of cases) {
    t.equal(
      reasonOf(() => validate(input)),
      `SPIFFE_JWT_INVALID/${reason}`,
      name,
    )
  }
})

t.test('duplicate members in the header or claims are rejected (no parser differentials)', async (t) => {
  const base = { spiffeId: SUB, audience: 'mcp', now: NOW }
  const exp = Math.floor(NOW.getTime() / 1000) + 300
  const cases: Array<[string, Parameters<DevJwtIssuer['issue']>[0]]> = [
    ['duplicate alg', { ...base, rawHeader: `{"alg":"none","alg":"ES256","kid":"${issuerA.kid}"}` }],
    ['duplicate kid', { ...base, rawHeader: `{"alg":"ES256","kid":"other","kid":"${issuerA.kid}"}` }],
    [
      'duplicate sub',
      { ...base, rawClaims: `{"sub":"spiffe://a.example/admin","sub":"${SUB}","aud":"mcp","exp":${exp}}` },
    ],
    ['duplicate aud', { ...base, rawClaims: `{"sub":"${SUB}","aud":"other","aud":"mcp","exp":${exp}}` }],
    ['duplicate exp', { ...base, rawClaims: `{"sub":"${SUB}","aud":"mcp","exp":1,"exp":${exp}}` }],
  ]
  for (const [name, opts] of cases) {
    t.equal(
      reasonOf(() => validate(issuerA.issue(opts))),
      'SPIFFE_JWT_INVALID/DUPLICATE_KEY',
      name,
    )
  }
  const proto = issuerA.issue({
    ...base,
    rawClaims: `{"sub":"${SUB}","aud":"mcp","exp":${exp},"__proto__":{}}`,
  })
  t.equal(
    reasonOf(() => validate(proto)),
    'SPIFFE_JWT_INVALID/FORBIDDEN_KEY',
  )
  const raw = issuerA.issue({ ...base, rawClaims: `{"sub":"${SUB}","aud":"mcp","exp":${exp}}` })
  t.equal(
    reasonOf(() => validate(raw)),
    'accepted',
    'the raw path itself produces valid tokens',
  )
})

t.test('a cached validation still re-checks bundle, key, time and audience on every call', async (t) => {
  const token = issue()
  const first = validate(token)
  t.equal(validate(token), first, 'a repeated token is served from the cache')

  const withoutKey = jwtBundleSource(new BundleSet([bundleOf(tdA, rsaA), bundleB]))
  t.equal(
    reasonOf(() => validate(token, withoutKey)),
    'SPIFFE_JWT_INVALID/UNKNOWN_KID',
    'key removed',
  )

  const rekeyed = DevJwtIssuer.create({ trustDomain: 'a.example', kid: issuerA.kid })
  const withNewKey = jwtBundleSource(new BundleSet([bundleOf(tdA, rekeyed)]))
  t.equal(
    reasonOf(() => validate(token, withNewKey)),
    'SPIFFE_JWT_INVALID/BAD_SIGNATURE',
    'kid now names another key',
  )

  const withoutBundle = jwtBundleSource(new BundleSet([bundleB]))
  t.throws(() => validate(token, withoutBundle), { code: 'SPIFFE_BUNDLE_NOT_FOUND' }, 'bundle removed')

  t.equal(
    reasonOf(() => validate(token, bundles, 'llm')),
    'SPIFFE_JWT_INVALID/AUDIENCE_MISMATCH',
  )
  t.equal(
    reasonOf(() => validate(token, bundles, 'mcp', new Date(NOW.getTime() + 3_600_000))),
    'SPIFFE_JWT_INVALID/EXPIRED',
  )

  // The same keys re-parsed into a new bundle are new authority objects: verified afresh, still valid.
  const reparsed = jwtBundleSource(new BundleSet([bundleOf(tdA, issuerA)]))
  t.equal(validate(token, reparsed).id.toString(), SUB)
  t.equal(validate(token).id.toString(), SUB, 'and the original bundle still validates it')
})

t.test('parseInsecure checks structure and claims but not the signature', async (t) => {
  const [h, p] = issue().split('.') as [string, string]
  const unsigned = `${h}.${p}.${Buffer.alloc(64).toString('base64url')}`
  const svid = JwtSvid.parseInsecure(unsigned, 'mcp', 'internal', { now: NOW })
  t.equal(svid.id.toString(), SUB)
  t.equal(svid.hint, 'internal')
  t.equal(svid.token, unsigned)
  const cases: Array<[string, () => unknown, string]> = [
    ['audience', () => JwtSvid.parseInsecure(unsigned, 'llm', '', { now: NOW }), 'AUDIENCE_MISMATCH'],
    [
      'expired',
      () => JwtSvid.parseInsecure(unsigned, 'mcp', '', { now: new Date(NOW.getTime() + 3_600_000) }),
      'EXPIRED',
    ],
    [
      'no aud',
      () => JwtSvid.parseInsecure(issue({ claims: { aud: undefined } }), 'mcp', '', { now: NOW }),
      'MISSING_AUD',
    ],
    [
      'no exp',
      () => JwtSvid.parseInsecure(issue({ claims: { exp: undefined } }), 'mcp', '', { now: NOW }),
      'MISSING_EXP',
    ],
    [
      'bad sub',
      () => JwtSvid.parseInsecure(issue({ claims: { sub: 'x' } }), 'mcp', '', { now: NOW }),
      'BAD_SUB',
    ],
    [
      'alg none',
      () => JwtSvid.parseInsecure(issue({ header: { alg: 'none' } }), 'mcp', '', { now: NOW }),
      'BAD_ALG',
    ],
    ['malformed', () => JwtSvid.parseInsecure('a.b', 'mcp'), 'MALFORMED'],
  ]
  for (const [name, fn, reason] of cases) t.equal(reasonOf(fn), `SPIFFE_JWT_INVALID/${reason}`, name)
})

t.test('halfLifeAt is the middle of iat..exp, or of parse time..exp without iat', async (t) => {
  const svid = validate(issue({ ttlMs: 300_000 }))
  t.equal(svid.halfLifeAt().getTime(), NOW.getTime() + 150_000)
  const noIat = JwtSvid.parseInsecure(issue({ ttlMs: 300_000, claims: { iat: undefined } }), 'mcp', '', {
    now: new Date(NOW.getTime() + 100_000),
  })
  t.equal(noIat.issuedAt, undefined)
  t.equal(noIat.halfLifeAt().getTime(), NOW.getTime() + 200_000)
})

t.test('the token never appears in errors, JSON or inspect output', async (t) => {
  const token = issue()
  const svid = validate(token)
  const sig = token.split('.')[2]!
  t.notOk(JSON.stringify(svid).includes(sig))
  t.notOk(inspect(svid).includes(sig))
  const failing = [
    issue({ audience: 'llm' }),
    issue({ signatureEncoding: 'der' }),
    issue({ header: { alg: 'HS256' } }),
    issue({ claims: { sub: 'spiffe://a.example/../x' } }),
    `${token}.x`,
  ]
  for (const bad of failing) {
    try {
      validate(bad)
      t.fail('should have thrown')
    } catch (err) {
      const e = err as Error
      const text = `${e.message} ${String((e.cause as Error | undefined)?.message ?? '')}`
      t.notOk(text.includes(bad.split('.')[2] ?? bad) || text.includes(bad), 'no token in the error')
    }
  }
})

function b64(s: string): string {
  return Buffer.from(s).toString('base64url')
}

/** Same bytes, but the last character carries non-zero unused bits. */
function noncanonical(s: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const last = alphabet.indexOf(s[s.length - 1]!)
  const mask = s.length % 4 === 2 ? 0x0f : 0x03
  return s.slice(0, -1) + alphabet[(last & ~mask) | 1]
}

// Before the signature is checked, `kid` and `sub` are whatever the caller sent; the refusal's message ends
// up in logs and audit records, so it carries them escaped and short.
t.test('refusals before the signature check quote kid and sub escaped and short', async (t) => {
  const hasControl = (s: string) => [...s].some((c) => (c.codePointAt(0) as number) < 0x20 || c === '\u007f')
  const cases = [
    issue({ header: { kid: `evil\nlevel=info msg="forged"${'k'.repeat(200)}` } }),
    issue({ spiffeId: `spiffe://nobody.example/${'p/'.repeat(900)}x` }),
  ]
  for (const token of cases) {
    let message = ''
    try {
      validate(token)
    } catch (err) {
      message = (err as Error).message
    }
    t.not(message, '', 'refused')
    t.notOk(hasControl(message), 'no control character reaches the message')
    t.ok(message.length <= 400, `message is ${message.length} characters`)
  }
})
