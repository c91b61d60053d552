/**
 * The SpiffeWorkloadAPI gRPC service as a grpc-js ServiceDefinition, wired to
 * the hand-written codec. One object serves both sides:
 * `makeGenericClientConstructor(WORKLOAD_API_SERVICE, 'SpiffeWorkloadAPI')`
 * for clients and `server.addService(WORKLOAD_API_SERVICE, impl)` for the dev
 * server. The proto has no package, so every path is `/SpiffeWorkloadAPI/<Method>`
 * (the spec's `workloadapi.proto` declares no package): a package prefix makes SPIRE answer UNIMPLEMENTED.
 */
import type * as grpc from '@grpc/grpc-js'
import {
  decodeEmpty,
  decodeJwtBundlesResponse,
  decodeJwtSvidRequest,
  decodeJwtSvidResponse,
  decodeValidateJwtSvidRequest,
  decodeValidateJwtSvidResponse,
  decodeWitBundlesResponse,
  decodeWitSvidRequest,
  decodeWitSvidResponse,
  decodeX509BundlesResponse,
  decodeX509SvidResponse,
  type Empty,
  encodeEmpty,
  encodeJwtBundlesResponse,
  encodeJwtSvidRequest,
  encodeJwtSvidResponse,
  encodeValidateJwtSvidRequest,
  encodeValidateJwtSvidResponse,
  encodeWitBundlesResponse,
  encodeWitSvidRequest,
  encodeWitSvidResponse,
  encodeX509BundlesResponse,
  encodeX509SvidResponse,
  type JwtBundlesResponse,
  type JwtSvidRequest,
  type JwtSvidResponse,
  type ValidateJwtSvidRequest,
  type ValidateJwtSvidResponse,
  type WitBundlesResponse,
  type WitSvidRequest,
  type WitSvidResponse,
  type X509BundlesResponse,
  type X509SvidResponse,
} from './messages.ts'

/** The metadata every Workload API call must carry (SSRF hardening; spec §3). */
export const SECURITY_HEADER_KEY = 'workload.spiffe.io'
export const SECURITY_HEADER_VALUE = 'true'

export const SERVICE_NAME = 'SpiffeWorkloadAPI'

export const METHOD = {
  FetchX509SVID: 'FetchX509SVID',
  FetchX509Bundles: 'FetchX509Bundles',
  FetchJWTSVID: 'FetchJWTSVID',
  FetchJWTBundles: 'FetchJWTBundles',
  ValidateJWTSVID: 'ValidateJWTSVID',
  FetchWITSVID: 'FetchWITSVID',
  FetchWITBundles: 'FetchWITBundles',
} as const

export type WorkloadApiMethod = (typeof METHOD)[keyof typeof METHOD]

/** The full gRPC path of a method, e.g. `/SpiffeWorkloadAPI/FetchX509SVID`. */
export function methodPath(method: WorkloadApiMethod): string {
  return `/${SERVICE_NAME}/${method}`
}

// grpc-js hands deserializers Buffers and wants Buffers back from serializers.
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

function method<Req, Res>(
  name: WorkloadApiMethod,
  responseStream: boolean,
  encodeRequest: (msg: Req) => Uint8Array,
  decodeRequest: (buf: Uint8Array) => Req,
  encodeResponse: (msg: Res) => Uint8Array,
  decodeResponse: (buf: Uint8Array) => Res,
): grpc.MethodDefinition<Req, Res> {
  return {
    path: methodPath(name),
    originalName: name,
    requestStream: false,
    responseStream,
    requestSerialize: (msg) => toBuffer(encodeRequest(msg)),
    requestDeserialize: decodeRequest,
    responseSerialize: (msg) => toBuffer(encodeResponse(msg)),
    responseDeserialize: decodeResponse,
  }
}

export interface WorkloadApiServiceDefinition extends grpc.ServiceDefinition {
  readonly FetchX509SVID: grpc.MethodDefinition<Empty, X509SvidResponse>
  readonly FetchX509Bundles: grpc.MethodDefinition<Empty, X509BundlesResponse>
  readonly FetchJWTSVID: grpc.MethodDefinition<JwtSvidRequest, JwtSvidResponse>
  readonly FetchJWTBundles: grpc.MethodDefinition<Empty, JwtBundlesResponse>
  readonly ValidateJWTSVID: grpc.MethodDefinition<ValidateJwtSvidRequest, ValidateJwtSvidResponse>
  readonly FetchWITSVID: grpc.MethodDefinition<WitSvidRequest, WitSvidResponse>
  readonly FetchWITBundles: grpc.MethodDefinition<Empty, WitBundlesResponse>
}

/** Handler types for a server implementing the service (e.g. the dev Workload API). */
export interface WorkloadApiHandlers extends grpc.UntypedServiceImplementation {
  FetchX509SVID: grpc.handleServerStreamingCall<Empty, X509SvidResponse>
  FetchX509Bundles: grpc.handleServerStreamingCall<Empty, X509BundlesResponse>
  FetchJWTSVID: grpc.handleUnaryCall<JwtSvidRequest, JwtSvidResponse>
  FetchJWTBundles: grpc.handleServerStreamingCall<Empty, JwtBundlesResponse>
  ValidateJWTSVID: grpc.handleUnaryCall<ValidateJwtSvidRequest, ValidateJwtSvidResponse>
  FetchWITSVID: grpc.handleServerStreamingCall<WitSvidRequest, WitSvidResponse>
  FetchWITBundles: grpc.handleServerStreamingCall<Empty, WitBundlesResponse>
}

export const WORKLOAD_API_SERVICE: WorkloadApiServiceDefinition = {
  FetchX509SVID: method(
    METHOD.FetchX509SVID,
    true,
    encodeEmpty,
    decodeEmpty,
    encodeX509SvidResponse,
    decodeX509SvidResponse,
  ),
  FetchX509Bundles: method(
    METHOD.FetchX509Bundles,
    true,
    encodeEmpty,
    decodeEmpty,
    encodeX509BundlesResponse,
    decodeX509BundlesResponse,
  ),
  FetchJWTSVID: method(
    METHOD.FetchJWTSVID,
    false,
    encodeJwtSvidRequest,
    decodeJwtSvidRequest,
    encodeJwtSvidResponse,
    decodeJwtSvidResponse,
  ),
  FetchJWTBundles: method(
    METHOD.FetchJWTBundles,
    true,
    encodeEmpty,
    decodeEmpty,
    encodeJwtBundlesResponse,
    decodeJwtBundlesResponse,
  ),
  ValidateJWTSVID: method(
    METHOD.ValidateJWTSVID,
    false,
    encodeValidateJwtSvidRequest,
    decodeValidateJwtSvidRequest,
    encodeValidateJwtSvidResponse,
    decodeValidateJwtSvidResponse,
  ),
  FetchWITSVID: method(
    METHOD.FetchWITSVID,
    true,
    encodeWitSvidRequest,
    decodeWitSvidRequest,
    encodeWitSvidResponse,
    decodeWitSvidResponse,
  ),
  FetchWITBundles: method(
    METHOD.FetchWITBundles,
    true,
    encodeEmpty,
    decodeEmpty,
    encodeWitBundlesResponse,
    decodeWitBundlesResponse,
  ),
}
