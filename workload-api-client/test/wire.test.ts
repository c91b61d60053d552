// The codec protoc-gen-es generated from workload.proto, with the library's
// strict decoding and encoding checks, cross-checked against protobufjs (an
// independent implementation) reading the same .proto, plus malformed input.
import { readFileSync } from 'node:fs'
import protobuf from 'protobufjs'
import t from 'tap'
import {
  JWTBundlesResponseSchema,
  JWTSVIDRequestSchema,
  ValidateJWTSVIDResponseSchema,
  X509SVIDResponseSchema,
} from '../src/internal/gen/workload_pb.ts'
import type { JsonObject } from '../src/internal/strict-json.ts'
import { decodeMessage, encodeMessage } from '../src/internal/wire/codec.ts'

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

const encodeX509SvidResponse = (m: object) => encodeMessage(X509SVIDResponseSchema, m)
const decodeX509SvidResponse = (b: Uint8Array) => decodeMessage(X509SVIDResponseSchema, b)
const encodeJwtSvidRequest = (m: object) => encodeMessage(JWTSVIDRequestSchema, m)
const decodeJwtSvidRequest = (b: Uint8Array) => decodeMessage(JWTSVIDRequestSchema, b)
const encodeJwtBundlesResponse = (m: object) => encodeMessage(JWTBundlesResponseSchema, m)
const decodeJwtBundlesResponse = (b: Uint8Array) => decodeMessage(JWTBundlesResponseSchema, b)
const encodeValidateJwtSvidResponse = (m: { spiffeId: string; claims: JsonObject }) =>
  encodeMessage(ValidateJWTSVIDResponseSchema, m)
const decodeValidateJwtSvidResponse = (b: Uint8Array) => decodeMessage(ValidateJWTSVIDResponseSchema, b)

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
    federatedBundles: { 'spiffe://partner.example': bytes(12, 13) },
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
  t.same([...(decoded.federatedBundles['spiffe://x.example'] ?? [])], [4, 5])
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
      $typeName: 'JWTSVIDRequest',
      audience: ['z'],
      spiffeId: '',
    })

    const jwks = new TextEncoder().encode('{"keys":[]}')
    const bundles = type('JWTBundlesResponse')
    const b = bundles.toObject(
      bundles.decode(encodeJwtBundlesResponse({ bundles: { 'spiffe://td': jwks } })),
      {
        bytes: String,
      },
    ) as { bundles: Record<string, string> }
    t.equal(Buffer.from(b.bundles['spiffe://td'] as string, 'base64').toString(), '{"keys":[]}')
    t.equal(
      new TextDecoder().decode(
        decodeJwtBundlesResponse(
          bundles.encode(bundles.fromObject({ bundles: { 'spiffe://td': jwks } })).finish(),
        ).bundles['spiffe://td'],
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
      $typeName: 'ValidateJWTSVIDResponse',
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
  t.same(decodeJwtSvidRequest(extended), {
    $typeName: 'JWTSVIDRequest',
    audience: ['a'],
    spiffeId: 'spiffe://td/x',
  })
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
    federatedBundles: {},
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

t.test('malformed input carries a stable reason', async (t) => {
  // [tag, ...] byte strings for X509SVIDResponse, each broken in one way.
  const cases: Array<[string, Uint8Array, string]> = [
    ['length past the end', bytes(0x0a, 0x05, 0x01), 'TRUNCATED'],
    ['varint past the end', bytes(0x0a, 0x80), 'TRUNCATED'],
    ['varint longer than 64 bits', bytes(0x10, ...Array(10).fill(0xff), 0x01), 'VARINT_TOO_LONG'],
    ['field number 0', bytes(0x02, 0x00), 'BAD_FIELD_NUMBER'],
    ['a group (wire type 3)', bytes(0x4b, 0x4c), 'BAD_WIRE_TYPE'],
    ['wire type 7', bytes(0x0f), 'BAD_WIRE_TYPE'],
    // svids (a message field) sent as a varint: the generated decoder alone would read it as a length.
    ['known field with another wire type', bytes(0x08, 0x03, 0x0a, 0x00), 'BAD_WIRE_TYPE'],
    // svids[0].spiffe_id = 0xff 0xfe
    ['string that is not UTF-8', bytes(0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe), 'BAD_UTF8'],
    // federated_bundles entry whose key is not UTF-8
    ['map key that is not UTF-8', bytes(0x1a, 0x03, 0x0a, 0x01, 0xc0), 'BAD_UTF8'],
    // federated_bundles entry whose bytes value arrives as a varint
    ['map value with another wire type', bytes(0x1a, 0x02, 0x10, 0x01), 'BAD_WIRE_TYPE'],
  ]
  for (const [name, input, reason] of cases) {
    t.throws(() => decodeX509SvidResponse(input), { code: 'SPIFFE_WLAPI_MALFORMED_RESPONSE', reason }, name)
  }
})

t.test('Struct nesting past 100 levels is refused both ways', async (t) => {
  // Struct{fields: {"a": Value{struct_value: Struct{...}}}} nested from the inside out.
  let struct = new Uint8Array(0)
  for (let i = 0; i < 60; i++) {
    const value = Uint8Array.from([0x2a, ...varint(struct.length), ...struct])
    const entry = Uint8Array.from([0x0a, 0x01, 0x61, 0x12, ...varint(value.length), ...value])
    struct = Uint8Array.from([0x0a, ...varint(entry.length), ...entry])
  }
  const response = Uint8Array.from([0x12, ...varint(struct.length), ...struct])
  t.throws(() => decodeValidateJwtSvidResponse(response), {
    code: 'SPIFFE_WLAPI_MALFORMED_RESPONSE',
    reason: 'TOO_DEEP',
  })

  let deep: JsonObject = {}
  for (let i = 0; i < 120; i++) deep = { a: deep }
  t.throws(() => encodeValidateJwtSvidResponse({ spiffeId: 'spiffe://td/x', claims: deep }), {
    code: 'SPIFFE_ARGUMENT_INVALID',
    reason: 'TOO_DEEP',
  })
  const cyclic: JsonObject = {}
  cyclic.self = cyclic
  t.throws(() => encodeValidateJwtSvidResponse({ spiffeId: 'spiffe://td/x', claims: cyclic }), {
    code: 'SPIFFE_ARGUMENT_INVALID',
    reason: 'TOO_DEEP',
  })
})

t.test('encoding refuses what the wire cannot carry faithfully', async (t) => {
  t.throws(() => encodeJwtSvidRequest({ audience: ['a\ud800'], spiffeId: '' }), {
    code: 'SPIFFE_ARGUMENT_INVALID',
    reason: 'BAD_STRING',
  })
  t.throws(() => encodeJwtSvidRequest({ audience: ['a'], spiffeId: 'spiffe://td/\udc00' }), {
    code: 'SPIFFE_ARGUMENT_INVALID',
    reason: 'BAD_STRING',
  })
  t.throws(
    () =>
      encodeValidateJwtSvidResponse({
        spiffeId: 'spiffe://td/x',
        claims: { f: (() => 1) as unknown as JsonObject },
      }),
    { code: 'SPIFFE_ARGUMENT_INVALID', reason: 'NOT_JSON' },
  )
})

t.test(
  'Struct claims: bigint as a double, undefined members dropped, "__proto__" kept as data',
  async (t) => {
    const claims = JSON.parse('{"__proto__": {"polluted": true}, "n": 1}') as JsonObject
    claims.big = 12345678901234567890n
    claims.gone = undefined as unknown as JsonObject
    const decoded = decodeValidateJwtSvidResponse(
      encodeValidateJwtSvidResponse({ spiffeId: 'spiffe://td/x', claims }),
    )
    const got = decoded.claims as Record<string, unknown>
    t.same(Object.keys(got).sort(), ['__proto__', 'big', 'n'])
    t.equal(got.big, Number(12345678901234567890n))
    t.equal(Object.getPrototypeOf(got), Object.prototype)
    t.same(Object.getOwnPropertyDescriptor(got, '__proto__')?.value, { polluted: true })
    t.equal(({} as Record<string, unknown>).polluted, undefined)
  },
)

t.test('a map key "__proto__" off the wire is an own member, not a prototype', async (t) => {
  const T = type('X509SVIDResponse')
  const wire = T.encode(T.fromObject({ federated_bundles: { ['__proto__']: [1] } })).finish()
  const decoded = decodeX509SvidResponse(wire)
  t.same(Object.keys(decoded.federatedBundles), ['__proto__'])
  t.equal(Object.getPrototypeOf(decoded.federatedBundles), Object.prototype)
})

function varint(n: number): number[] {
  const out: number[] = []
  let v = n
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80)
    v >>>= 7
  }
  out.push(v)
  return out
}
