// The hand-written protobuf codec, checked against protobufjs reading our own
// workload.proto (so the .proto, the codec and the wire agree), plus
// malformed input.
import { readFileSync } from 'node:fs'
import protobuf from 'protobufjs'
import t from 'tap'
import {
  decodeJwtBundlesResponse,
  decodeJwtSvidRequest,
  decodeValidateJwtSvidResponse,
  decodeX509SvidResponse,
  encodeJwtBundlesResponse,
  encodeJwtSvidRequest,
  encodeValidateJwtSvidResponse,
  encodeX509SvidResponse,
} from '../src/wire/index.ts'

const protoText = readFileSync(new URL('../proto/workload.proto', import.meta.url), 'utf8')
const root = protobuf.parse(protoText, { keepCase: true }).root
// struct.proto comes with protobufjs's common definitions.
root.add(
  protobuf.Root.fromJSON(protobuf.common.get('google/protobuf/struct.proto') as protobuf.INamespace).lookup(
    'google',
  ) as protobuf.ReflectionObject,
)
root.resolveAll()
const type = (name: string) => root.lookupType(name)

const bytes = (...b: number[]) => Uint8Array.from(b)

t.test('X509SVIDResponse: our encoding reads back in protobufjs, and the other way round', async (t) => {
  const message = {
    svids: [
      {
        spiffeId: 'spiffe://example.org/a',
        x509Svid: bytes(1, 2, 3),
        x509SvidKey: bytes(4, 5),
        bundle: bytes(6),
        hint: 'a',
      },
      {
        spiffeId: 'spiffe://example.org/b',
        x509Svid: bytes(7),
        x509SvidKey: bytes(8),
        bundle: bytes(9),
        hint: '',
      },
    ],
    crl: [bytes(10, 11)],
    federatedBundles: new Map([['spiffe://partner.example', bytes(12, 13)]]),
  }
  const T = type('X509SVIDResponse')
  const viaJs = T.toObject(T.decode(encodeX509SvidResponse(message)), {
    bytes: Array,
    defaults: true,
  }) as Record<string, unknown>
  t.same(viaJs, {
    svids: [
      {
        spiffe_id: 'spiffe://example.org/a',
        x509_svid: [1, 2, 3],
        x509_svid_key: [4, 5],
        bundle: [6],
        hint: 'a',
      },
      { spiffe_id: 'spiffe://example.org/b', x509_svid: [7], x509_svid_key: [8], bundle: [9], hint: '' },
    ],
    crl: [[10, 11]],
    federated_bundles: { 'spiffe://partner.example': [12, 13] },
  })
  const fromJs = T.encode(
    T.fromObject({
      svids: [
        { spiffe_id: 'spiffe://example.org/a', x509_svid: [1], x509_svid_key: [2], bundle: [3], hint: 'h' },
      ],
      federated_bundles: { 'spiffe://x.example': [4, 5] },
    }),
  ).finish()
  const decoded = decodeX509SvidResponse(fromJs)
  t.equal(decoded.svids[0]?.spiffeId, 'spiffe://example.org/a')
  t.same([...(decoded.svids[0]?.x509Svid ?? [])], [1])
  t.equal(decoded.svids[0]?.hint, 'h')
  t.same([...(decoded.federatedBundles.get('spiffe://x.example') ?? [])], [4, 5])
})

t.test(
  'JWTSVIDRequest, JWTBundlesResponse and ValidateJWTSVIDResponse (Struct claims) agree with protobufjs',
  async (t) => {
    const req = type('JWTSVIDRequest')
    t.same(
      req.toObject(req.decode(encodeJwtSvidRequest({ audience: ['a', 'b'], spiffeId: 'spiffe://td/x' }))),
      {
        audience: ['a', 'b'],
        spiffe_id: 'spiffe://td/x',
      },
    )
    t.same(decodeJwtSvidRequest(req.encode(req.fromObject({ audience: ['z'] })).finish()), {
      audience: ['z'],
      spiffeId: '',
    })

    const jwks = new TextEncoder().encode('{"keys":[]}')
    const bundles = type('JWTBundlesResponse')
    const b = bundles.toObject(
      bundles.decode(encodeJwtBundlesResponse({ bundles: new Map([['spiffe://td', jwks]]) })),
      {
        bytes: String,
      },
    ) as { bundles: Record<string, string> }
    t.equal(Buffer.from(b.bundles['spiffe://td'] as string, 'base64').toString(), '{"keys":[]}')
    t.equal(
      new TextDecoder().decode(
        decodeJwtBundlesResponse(
          bundles.encode(bundles.fromObject({ bundles: { 'spiffe://td': jwks } })).finish(),
        ).bundles.get('spiffe://td'),
      ),
      '{"keys":[]}',
    )

    const claims = { sub: 'spiffe://td/x', aud: ['a'], exp: 1795406361, nested: { ok: true, none: null } }
    const vr = type('ValidateJWTSVIDResponse')
    const ours = encodeValidateJwtSvidResponse({ spiffeId: 'spiffe://td/x', claims })
    const parsed = vr.toObject(vr.decode(ours)) as {
      spiffe_id: string
      claims: { fields: Record<string, unknown> }
    }
    t.equal(parsed.spiffe_id, 'spiffe://td/x')
    t.same(Object.keys(parsed.claims.fields).sort(), ['aud', 'exp', 'nested', 'sub'])
    t.same(decodeValidateJwtSvidResponse(vr.encode(vr.decode(ours)).finish()), {
      spiffeId: 'spiffe://td/x',
      claims,
    })
  },
)

t.test('unknown fields are skipped, as proto3 requires', async (t) => {
  const T = type('JWTSVIDRequest')
  const known = T.encode(T.fromObject({ audience: ['a'], spiffe_id: 'spiffe://td/x' })).finish()
  // Field 9, varint 150 and field 10, length-delimited "hi": appended by a newer server.
  const extended = Uint8Array.from([...known, 0x48, 0x96, 0x01, 0x52, 0x02, 0x68, 0x69])
  t.same(decodeJwtSvidRequest(extended), { audience: ['a'], spiffeId: 'spiffe://td/x' })
})

t.test('truncated or garbage input is a typed error, never a crash', async (t) => {
  const good = encodeX509SvidResponse({
    svids: [
      {
        spiffeId: 'spiffe://td/a',
        x509Svid: bytes(1, 2, 3),
        x509SvidKey: bytes(4),
        bundle: bytes(5),
        hint: '',
      },
    ],
    crl: [],
    federatedBundles: new Map(),
  })
  for (let cut = 1; cut < good.length; cut++) {
    t.throws(
      () => decodeX509SvidResponse(good.subarray(0, cut)),
      { code: 'SPIFFE_WLAPI_MALFORMED_RESPONSE' },
      `cut at ${cut}`,
    )
  }
  for (const garbage of [
    bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
    bytes(0x0f),
    bytes(0x0a, 0x80),
  ]) {
    t.throws(() => decodeX509SvidResponse(garbage), { code: 'SPIFFE_WLAPI_MALFORMED_RESPONSE' })
  }
})
