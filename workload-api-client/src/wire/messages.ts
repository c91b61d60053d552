/**
 * The Workload API messages (the SPIFFE spec's `workloadapi.proto`) and
 * google.protobuf.Struct, each with an encoder and a decoder. The client
 * encodes requests and decodes responses; the dev server in `certs` does the
 * reverse, so both directions live here.
 *
 * Decoding follows proto3: absent fields hold defaults, the last value of a
 * scalar wins, repeated fields accumulate, repeated occurrences of a message
 * field merge, a map entry without key or value uses the default, and the last
 * of two equal map keys wins. Unknown fields, and known fields arriving with a
 * different wire type (as protobuf-go does), are skipped.
 */
import { SpiffeError } from '../errors.ts'
import type { JsonObject, JsonValue } from '../strict-json.ts'
import { malformed, ProtoReader, ProtoWriter, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT } from './protobuf.ts'

/** X509SVIDRequest, X509BundlesRequest and JWTBundlesRequest have no fields. */
export type Empty = Record<string, never>

export interface X509SvidMessage {
  spiffeId: string
  /** Concatenated DER certificates, leaf first. */
  x509Svid: Uint8Array
  /** DER PKCS#8 private key. */
  x509SvidKey: Uint8Array
  /** Concatenated DER CA certificates of the SVID's own trust domain. */
  bundle: Uint8Array
  hint: string
}

export interface X509SvidResponse {
  svids: X509SvidMessage[]
  crl: Uint8Array[]
  /** Trust domain ID → concatenated DER CA certificates. */
  federatedBundles: Map<string, Uint8Array>
}

export interface X509BundlesResponse {
  crl: Uint8Array[]
  bundles: Map<string, Uint8Array>
}

export interface JwtSvidRequest {
  audience: string[]
  /** Optional filter; '' asks for every identity. */
  spiffeId: string
}

export interface JwtSvidMessage {
  spiffeId: string
  /** Compact JWS. */
  svid: string
  hint: string
}

export interface JwtSvidResponse {
  svids: JwtSvidMessage[]
}

export interface JwtBundlesResponse {
  /** Trust domain ID → JWKS JSON bytes. */
  bundles: Map<string, Uint8Array>
}

export interface ValidateJwtSvidRequest {
  audience: string
  svid: string
}

export interface ValidateJwtSvidResponse {
  spiffeId: string
  claims: Record<string, JsonValue>
}

export interface WitSvidRequest {
  spiffeId: string
}

export interface WitSvidMessage {
  spiffeId: string
  witSvid: string
  /** The private key as a JWK JSON string. */
  witSvidKey: string
  hint: string
}

export interface WitSvidResponse {
  svids: WitSvidMessage[]
}

export interface WitBundlesResponse {
  bundles: Map<string, string>
}

/** Nesting limit for Struct/Value/ListValue, as protobuf C++'s default recursion limit. */
export const MAX_STRUCT_DEPTH = 100

// --- framing -----------------------------------------------------------------

function encoder<T>(write: (w: ProtoWriter, msg: T) => void): (msg: T) => Uint8Array {
  return (msg) => {
    const w = new ProtoWriter()
    write(w, msg)
    return w.finish()
  }
}

function decoder<T>(name: string, read: (r: ProtoReader) => T): (buf: Uint8Array) => T {
  return (buf) => {
    try {
      return read(new ProtoReader(buf))
    } catch (err) {
      if (err instanceof SpiffeError) {
        throw new SpiffeError(err.code, `${name}: ${err.message}`, withReason(err.reason))
      }
      throw err
    }
  }
}

function withReason(reason: string | undefined): { reason?: string } {
  return reason === undefined ? {} : { reason }
}

function bytesMapEntry(w: ProtoWriter, field: number, key: string, value: Uint8Array): void {
  const entry = w.begin(field)
  w.stringField(1, key)
  w.bytesField(2, value)
  w.end(entry)
}

function stringMapEntry(w: ProtoWriter, field: number, key: string, value: string): void {
  const entry = w.begin(field)
  w.stringField(1, key)
  w.stringField(2, value)
  w.end(entry)
}

function readBytesMapEntry(r: ProtoReader, into: Map<string, Uint8Array>): void {
  const e = r.sub()
  let key = ''
  let value: Uint8Array | undefined
  while (!e.done) {
    const field = e.tag()
    if (field === 1 && e.wireType === WIRE_LEN) key = e.string()
    else if (field === 2 && e.wireType === WIRE_LEN) value = e.bytes()
    else e.skip()
  }
  into.set(key, value ?? new Uint8Array(0))
}

function readStringMapEntry(r: ProtoReader, into: Map<string, string>): void {
  const e = r.sub()
  let key = ''
  let value = ''
  while (!e.done) {
    const field = e.tag()
    if (field === 1 && e.wireType === WIRE_LEN) key = e.string()
    else if (field === 2 && e.wireType === WIRE_LEN) value = e.string()
    else e.skip()
  }
  into.set(key, value)
}

function skipAll(r: ProtoReader): Empty {
  while (!r.done) {
    r.tag()
    r.skip()
  }
  return {}
}

// proto3 leaves singular scalars at their default off the wire.
function optString(w: ProtoWriter, field: number, value: string): void {
  if (value.length > 0) w.stringField(field, value)
}

function optBytes(w: ProtoWriter, field: number, value: Uint8Array): void {
  if (value.length > 0) w.bytesField(field, value)
}

// --- Empty requests ----------------------------------------------------------

/** Any empty request: zero bytes on the wire. */
export function encodeEmpty(_msg?: Empty): Uint8Array {
  return new Uint8Array(0)
}

/** Checks the framing of a request without fields (unknown fields are skipped). */
export const decodeEmpty: (buf: Uint8Array) => Empty = decoder('empty request', skipAll)

// --- X.509 -------------------------------------------------------------------

function writeX509Svid(w: ProtoWriter, m: X509SvidMessage): void {
  optString(w, 1, m.spiffeId)
  optBytes(w, 2, m.x509Svid)
  optBytes(w, 3, m.x509SvidKey)
  optBytes(w, 4, m.bundle)
  optString(w, 5, m.hint)
}

function readX509Svid(r: ProtoReader): X509SvidMessage {
  const m: X509SvidMessage = {
    spiffeId: '',
    x509Svid: new Uint8Array(0),
    x509SvidKey: new Uint8Array(0),
    bundle: new Uint8Array(0),
    hint: '',
  }
  while (!r.done) {
    const field = r.tag()
    if (r.wireType !== WIRE_LEN) r.skip()
    else if (field === 1) m.spiffeId = r.string()
    else if (field === 2) m.x509Svid = r.bytes()
    else if (field === 3) m.x509SvidKey = r.bytes()
    else if (field === 4) m.bundle = r.bytes()
    else if (field === 5) m.hint = r.string()
    else r.skip()
  }
  return m
}

function writeX509SvidResponse(w: ProtoWriter, m: X509SvidResponse): void {
  for (const svid of m.svids) {
    const at = w.begin(1)
    writeX509Svid(w, svid)
    w.end(at)
  }
  for (const crl of m.crl) w.bytesField(2, crl)
  for (const [td, der] of m.federatedBundles) bytesMapEntry(w, 3, td, der)
}

function readX509SvidResponse(r: ProtoReader): X509SvidResponse {
  const m: X509SvidResponse = { svids: [], crl: [], federatedBundles: new Map() }
  while (!r.done) {
    const field = r.tag()
    if (r.wireType !== WIRE_LEN) r.skip()
    else if (field === 1) m.svids.push(readX509Svid(r.sub()))
    else if (field === 2) m.crl.push(r.bytes())
    else if (field === 3) readBytesMapEntry(r, m.federatedBundles)
    else r.skip()
  }
  return m
}

function writeX509BundlesResponse(w: ProtoWriter, m: X509BundlesResponse): void {
  for (const crl of m.crl) w.bytesField(1, crl)
  for (const [td, der] of m.bundles) bytesMapEntry(w, 2, td, der)
}

function readX509BundlesResponse(r: ProtoReader): X509BundlesResponse {
  const m: X509BundlesResponse = { crl: [], bundles: new Map() }
  while (!r.done) {
    const field = r.tag()
    if (r.wireType !== WIRE_LEN) r.skip()
    else if (field === 1) m.crl.push(r.bytes())
    else if (field === 2) readBytesMapEntry(r, m.bundles)
    else r.skip()
  }
  return m
}

export const encodeX509SvidMessage: (msg: X509SvidMessage) => Uint8Array = encoder(writeX509Svid)
export const decodeX509SvidMessage: (buf: Uint8Array) => X509SvidMessage = decoder('X509SVID', readX509Svid)
export const encodeX509SvidResponse: (msg: X509SvidResponse) => Uint8Array = encoder(writeX509SvidResponse)
export const decodeX509SvidResponse: (buf: Uint8Array) => X509SvidResponse = decoder(
  'X509SVIDResponse',
  readX509SvidResponse,
)
export const encodeX509BundlesResponse: (msg: X509BundlesResponse) => Uint8Array =
  encoder(writeX509BundlesResponse)
export const decodeX509BundlesResponse: (buf: Uint8Array) => X509BundlesResponse = decoder(
  'X509BundlesResponse',
  readX509BundlesResponse,
)

// --- JWT ---------------------------------------------------------------------

function writeJwtSvidRequest(w: ProtoWriter, m: JwtSvidRequest): void {
  for (const aud of m.audience) w.stringField(1, aud)
  optString(w, 2, m.spiffeId)
}

function readJwtSvidRequest(r: ProtoReader): JwtSvidRequest {
  const m: JwtSvidRequest = { audience: [], spiffeId: '' }
  while (!r.done) {
    const field = r.tag()
    if (r.wireType !== WIRE_LEN) r.skip()
    else if (field === 1) m.audience.push(r.string())
    else if (field === 2) m.spiffeId = r.string()
    else r.skip()
  }
  return m
}

function writeJwtSvid(w: ProtoWriter, m: JwtSvidMessage): void {
  optString(w, 1, m.spiffeId)
  optString(w, 2, m.svid)
  optString(w, 3, m.hint)
}

function readJwtSvid(r: ProtoReader): JwtSvidMessage {
  const m: JwtSvidMessage = { spiffeId: '', svid: '', hint: '' }
  while (!r.done) {
    const field = r.tag()
    if (r.wireType !== WIRE_LEN) r.skip()
    else if (field === 1) m.spiffeId = r.string()
    else if (field === 2) m.svid = r.string()
    else if (field === 3) m.hint = r.string()
    else r.skip()
  }
  return m
}

function writeJwtSvidResponse(w: ProtoWriter, m: JwtSvidResponse): void {
  for (const svid of m.svids) {
    const at = w.begin(1)
    writeJwtSvid(w, svid)
    w.end(at)
  }
}

function readJwtSvidResponse(r: ProtoReader): JwtSvidResponse {
  const m: JwtSvidResponse = { svids: [] }
  while (!r.done) {
    const field = r.tag()
    if (field === 1 && r.wireType === WIRE_LEN) m.svids.push(readJwtSvid(r.sub()))
    else r.skip()
  }
  return m
}

function writeJwtBundlesResponse(w: ProtoWriter, m: JwtBundlesResponse): void {
  for (const [td, jwks] of m.bundles) bytesMapEntry(w, 1, td, jwks)
}

function readJwtBundlesResponse(r: ProtoReader): JwtBundlesResponse {
  const m: JwtBundlesResponse = { bundles: new Map() }
  while (!r.done) {
    const field = r.tag()
    if (field === 1 && r.wireType === WIRE_LEN) readBytesMapEntry(r, m.bundles)
    else r.skip()
  }
  return m
}

function writeValidateJwtSvidRequest(w: ProtoWriter, m: ValidateJwtSvidRequest): void {
  optString(w, 1, m.audience)
  optString(w, 2, m.svid)
}

function readValidateJwtSvidRequest(r: ProtoReader): ValidateJwtSvidRequest {
  const m: ValidateJwtSvidRequest = { audience: '', svid: '' }
  while (!r.done) {
    const field = r.tag()
    if (r.wireType !== WIRE_LEN) r.skip()
    else if (field === 1) m.audience = r.string()
    else if (field === 2) m.svid = r.string()
    else r.skip()
  }
  return m
}

function writeValidateJwtSvidResponse(w: ProtoWriter, m: ValidateJwtSvidResponse): void {
  optString(w, 1, m.spiffeId)
  const at = w.begin(2)
  writeStructFields(w, m.claims, 1)
  w.end(at)
}

function readValidateJwtSvidResponse(r: ProtoReader): ValidateJwtSvidResponse {
  const m: ValidateJwtSvidResponse = { spiffeId: '', claims: {} }
  while (!r.done) {
    const field = r.tag()
    if (r.wireType !== WIRE_LEN) r.skip()
    else if (field === 1) m.spiffeId = r.string()
    else if (field === 2) readStruct(r.sub(), 1, m.claims)
    else r.skip()
  }
  return m
}

export const encodeJwtSvidRequest: (msg: JwtSvidRequest) => Uint8Array = encoder(writeJwtSvidRequest)
export const decodeJwtSvidRequest: (buf: Uint8Array) => JwtSvidRequest = decoder(
  'JWTSVIDRequest',
  readJwtSvidRequest,
)
export const encodeJwtSvidMessage: (msg: JwtSvidMessage) => Uint8Array = encoder(writeJwtSvid)
export const decodeJwtSvidMessage: (buf: Uint8Array) => JwtSvidMessage = decoder('JWTSVID', readJwtSvid)
export const encodeJwtSvidResponse: (msg: JwtSvidResponse) => Uint8Array = encoder(writeJwtSvidResponse)
export const decodeJwtSvidResponse: (buf: Uint8Array) => JwtSvidResponse = decoder(
  'JWTSVIDResponse',
  readJwtSvidResponse,
)
export const encodeJwtBundlesResponse: (msg: JwtBundlesResponse) => Uint8Array =
  encoder(writeJwtBundlesResponse)
export const decodeJwtBundlesResponse: (buf: Uint8Array) => JwtBundlesResponse = decoder(
  'JWTBundlesResponse',
  readJwtBundlesResponse,
)
export const encodeValidateJwtSvidRequest: (msg: ValidateJwtSvidRequest) => Uint8Array =
  encoder(writeValidateJwtSvidRequest)
export const decodeValidateJwtSvidRequest: (buf: Uint8Array) => ValidateJwtSvidRequest = decoder(
  'ValidateJWTSVIDRequest',
  readValidateJwtSvidRequest,
)
export const encodeValidateJwtSvidResponse: (msg: ValidateJwtSvidResponse) => Uint8Array = encoder(
  writeValidateJwtSvidResponse,
)
export const decodeValidateJwtSvidResponse: (buf: Uint8Array) => ValidateJwtSvidResponse = decoder(
  'ValidateJWTSVIDResponse',
  readValidateJwtSvidResponse,
)

// --- WIT (optional, incubating) ---------------------------------------------

function writeWitSvidRequest(w: ProtoWriter, m: WitSvidRequest): void {
  optString(w, 1, m.spiffeId)
}

function readWitSvidRequest(r: ProtoReader): WitSvidRequest {
  const m: WitSvidRequest = { spiffeId: '' }
  while (!r.done) {
    const field = r.tag()
    if (field === 1 && r.wireType === WIRE_LEN) m.spiffeId = r.string()
    else r.skip()
  }
  return m
}

function writeWitSvid(w: ProtoWriter, m: WitSvidMessage): void {
  optString(w, 1, m.spiffeId)
  optString(w, 2, m.witSvid)
  optString(w, 3, m.witSvidKey)
  optString(w, 4, m.hint)
}

function readWitSvid(r: ProtoReader): WitSvidMessage {
  const m: WitSvidMessage = { spiffeId: '', witSvid: '', witSvidKey: '', hint: '' }
  while (!r.done) {
    const field = r.tag()
    if (r.wireType !== WIRE_LEN) r.skip()
    else if (field === 1) m.spiffeId = r.string()
    else if (field === 2) m.witSvid = r.string()
    else if (field === 3) m.witSvidKey = r.string()
    else if (field === 4) m.hint = r.string()
    else r.skip()
  }
  return m
}

function writeWitSvidResponse(w: ProtoWriter, m: WitSvidResponse): void {
  for (const svid of m.svids) {
    const at = w.begin(1)
    writeWitSvid(w, svid)
    w.end(at)
  }
}

function readWitSvidResponse(r: ProtoReader): WitSvidResponse {
  const m: WitSvidResponse = { svids: [] }
  while (!r.done) {
    const field = r.tag()
    if (field === 1 && r.wireType === WIRE_LEN) m.svids.push(readWitSvid(r.sub()))
    else r.skip()
  }
  return m
}

function writeWitBundlesResponse(w: ProtoWriter, m: WitBundlesResponse): void {
  for (const [td, jwks] of m.bundles) stringMapEntry(w, 1, td, jwks)
}

function readWitBundlesResponse(r: ProtoReader): WitBundlesResponse {
  const m: WitBundlesResponse = { bundles: new Map() }
  while (!r.done) {
    const field = r.tag()
    if (field === 1 && r.wireType === WIRE_LEN) readStringMapEntry(r, m.bundles)
    else r.skip()
  }
  return m
}

export const encodeWitSvidRequest: (msg: WitSvidRequest) => Uint8Array = encoder(writeWitSvidRequest)
export const decodeWitSvidRequest: (buf: Uint8Array) => WitSvidRequest = decoder(
  'WITSVIDRequest',
  readWitSvidRequest,
)
export const encodeWitSvidMessage: (msg: WitSvidMessage) => Uint8Array = encoder(writeWitSvid)
export const decodeWitSvidMessage: (buf: Uint8Array) => WitSvidMessage = decoder('WITSVID', readWitSvid)
export const encodeWitSvidResponse: (msg: WitSvidResponse) => Uint8Array = encoder(writeWitSvidResponse)
export const decodeWitSvidResponse: (buf: Uint8Array) => WitSvidResponse = decoder(
  'WITSVIDResponse',
  readWitSvidResponse,
)
export const encodeWitBundlesResponse: (msg: WitBundlesResponse) => Uint8Array =
  encoder(writeWitBundlesResponse)
export const decodeWitBundlesResponse: (buf: Uint8Array) => WitBundlesResponse = decoder(
  'WITBundlesResponse',
  readWitBundlesResponse,
)

// --- google.protobuf.Struct / Value / ListValue ------------------------------

function notJson(what: string): SpiffeError {
  return new SpiffeError('SPIFFE_ARGUMENT_INVALID', `${what} cannot be encoded as a google.protobuf.Value`, {
    reason: 'NOT_JSON',
  })
}

function checkEncodeDepth(depth: number): void {
  // Also stops a cyclic object from recursing until the stack overflows.
  if (depth > MAX_STRUCT_DEPTH) {
    throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', `Struct nesting exceeds ${MAX_STRUCT_DEPTH} levels`, {
      reason: 'TOO_DEEP',
    })
  }
}

function writeStructFields(w: ProtoWriter, obj: JsonObject, depth: number): void {
  checkEncodeDepth(depth)
  for (const key of Object.keys(obj)) {
    const value = obj[key]
    // As JSON.stringify does: an undefined member is absent, not null.
    if (value === undefined) continue
    const entry = w.begin(1)
    w.stringField(1, key)
    const v = w.begin(2)
    writeValueFields(w, value, depth + 1)
    w.end(v)
    w.end(entry)
  }
}

function writeListFields(w: ProtoWriter, list: readonly JsonValue[], depth: number): void {
  checkEncodeDepth(depth)
  for (const item of list) {
    const v = w.begin(1)
    writeValueFields(w, item, depth + 1)
    w.end(v)
  }
}

// Inside a oneof every case is written even when it holds its default value.
function writeValueFields(w: ProtoWriter, value: JsonValue, depth: number): void {
  checkEncodeDepth(depth)
  switch (typeof value) {
    case 'string':
      w.stringField(3, value)
      return
    case 'number':
      w.doubleField(2, value)
      return
    case 'bigint':
      // Struct numbers are doubles; integers past 2^53 lose precision here, as in any JSON→Struct mapping.
      w.doubleField(2, Number(value))
      return
    case 'boolean':
      w.boolField(4, value)
      return
    case 'object': {
      if (value === null) {
        w.varintField(1, 0)
      } else if (Array.isArray(value)) {
        const at = w.begin(6)
        writeListFields(w, value, depth + 1)
        w.end(at)
      } else {
        const at = w.begin(5)
        writeStructFields(w, value, depth + 1)
        w.end(at)
      }
      return
    }
    default:
      throw notJson(`a ${typeof value}`)
  }
}

function checkDecodeDepth(r: ProtoReader, depth: number): void {
  if (depth > MAX_STRUCT_DEPTH) {
    throw malformed('TOO_DEEP', `Struct nesting exceeds ${MAX_STRUCT_DEPTH} levels at offset ${r.pos}`)
  }
}

function setMember(obj: JsonObject, key: string, value: JsonValue): void {
  // An own "__proto__" member must stay data; assignment would replace the prototype.
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true })
  } else {
    obj[key] = value
  }
}

function readStruct(r: ProtoReader, depth: number, into: JsonObject): JsonObject {
  checkDecodeDepth(r, depth)
  while (!r.done) {
    const field = r.tag()
    if (field !== 1 || r.wireType !== WIRE_LEN) {
      r.skip()
      continue
    }
    const e = r.sub()
    let key = ''
    let value: JsonValue = null
    while (!e.done) {
      const f = e.tag()
      if (f === 1 && e.wireType === WIRE_LEN) key = e.string()
      else if (f === 2 && e.wireType === WIRE_LEN) value = readValue(e.sub(), depth + 1)
      else e.skip()
    }
    setMember(into, key, value)
  }
  return into
}

function readList(r: ProtoReader, depth: number, into: JsonValue[]): JsonValue[] {
  checkDecodeDepth(r, depth)
  while (!r.done) {
    const field = r.tag()
    if (field === 1 && r.wireType === WIRE_LEN) into.push(readValue(r.sub(), depth + 1))
    else r.skip()
  }
  return into
}

/** A Value with no kind set reads as null, as protobuf-go's AsInterface does. */
function readValue(r: ProtoReader, depth: number): JsonValue {
  checkDecodeDepth(r, depth)
  let value: JsonValue = null
  let kind = 0
  while (!r.done) {
    const field = r.tag()
    const wt = r.wireType
    if (field === 1 && wt === WIRE_VARINT) {
      r.varint()
      value = null
    } else if (field === 2 && wt === WIRE_FIXED64) {
      value = r.double()
    } else if (field === 3 && wt === WIRE_LEN) {
      value = r.string()
    } else if (field === 4 && wt === WIRE_VARINT) {
      value = r.bool()
    } else if (field === 5 && wt === WIRE_LEN) {
      // A message case seen twice merges, as protobuf merges repeated message fields.
      value = readStruct(r.sub(), depth + 1, kind === 5 ? (value as JsonObject) : {})
    } else if (field === 6 && wt === WIRE_LEN) {
      value = readList(r.sub(), depth + 1, kind === 6 ? (value as JsonValue[]) : [])
    } else {
      r.skip()
      continue
    }
    kind = field
  }
  return value
}

export const encodeStruct: (msg: JsonObject) => Uint8Array = encoder((w, m) => writeStructFields(w, m, 0))
export const decodeStruct: (buf: Uint8Array) => JsonObject = decoder('Struct', (r) => readStruct(r, 0, {}))
export const encodeValue: (msg: JsonValue) => Uint8Array = encoder((w, m) => writeValueFields(w, m, 0))
export const decodeValue: (buf: Uint8Array) => JsonValue = decoder('Value', (r) => readValue(r, 0))
export const encodeListValue: (msg: readonly JsonValue[]) => Uint8Array = encoder((w, m) =>
  writeListFields(w, m, 0),
)
export const decodeListValue: (buf: Uint8Array) => JsonValue[] = decoder('ListValue', (r) =>
  readList(r, 0, []),
)
