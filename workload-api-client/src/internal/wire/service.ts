/**
 * The SpiffeWorkloadAPI gRPC service as a grpc-js ServiceDefinition, built
 * from the service descriptor protoc-gen-es generated, with the generated
 * encoder and decoder (through codec.ts) as serializers. One object serves
 * both sides: the client calls `WORKLOAD_API_SERVICE[m].path` with its
 * serializers, and the dev server passes it to `server.addService`. The proto
 * has no package, so every path is `/SpiffeWorkloadAPI/<Method>` (the spec's
 * `workloadapi.proto` declares none): a package prefix makes SPIRE answer
 * UNIMPLEMENTED.
 */

import type { DescMessage, Message, MessageInitShape } from '@bufbuild/protobuf'
import type * as grpc from '@grpc/grpc-js'
import {
  type JWTBundlesResponse,
  type JWTSVIDRequest,
  type JWTSVIDResponse,
  SpiffeWorkloadAPI,
  type ValidateJWTSVIDRequest,
  type WITBundlesResponse,
  type WITSVIDRequest,
  type WITSVIDResponse,
  type X509BundlesResponse,
  type X509SVIDResponse,
} from '../gen/workload_pb.ts'
import type { JsonObject } from '../strict-json.ts'
import { decodeMessage, encodeMessage } from './codec.ts'

/** The metadata every Workload API call must carry (SSRF hardening; spec §3). */
export const SECURITY_HEADER_KEY = 'workload.spiffe.io'
export const SECURITY_HEADER_VALUE = 'true'

/** `SpiffeWorkloadAPI`: the proto declares no package. */
export const SERVICE_NAME: string = SpiffeWorkloadAPI.typeName

export type WorkloadApiMethod =
  | 'FetchX509SVID'
  | 'FetchX509Bundles'
  | 'FetchJWTSVID'
  | 'FetchJWTBundles'
  | 'ValidateJWTSVID'
  | 'FetchWITSVID'
  | 'FetchWITBundles'

/** The full gRPC path of a method, e.g. `/SpiffeWorkloadAPI/FetchX509SVID`. */
export function methodPath(method: WorkloadApiMethod): string {
  return `/${SERVICE_NAME}/${method}`
}

/** Requests without fields: X509SVIDRequest, X509BundlesRequest, JWTBundlesRequest, WITBundlesRequest. */
export type Empty = Record<string, never>

/**
 * ValidateJWTSVIDResponse with its claims as this library's JSON (which
 * reads integers past 2^53 as bigint); the encoder writes them as doubles.
 */
export type ValidateJWTSVIDResponse = Message<'ValidateJWTSVIDResponse'> & {
  spiffeId: string
  claims?: JsonObject
}

/**
 * What a server writes for a message: the generated type as a plain object
 * without `$typeName`, every field optional (proto3 defaults fill the rest),
 * nested messages likewise.
 */
export type MessageInit<T> = { [K in keyof T as K extends `$${string}` ? never : K]?: FieldInit<T[K]> }

/** A field of a MessageInit: nested messages and lists of them as initializers too. */
export type FieldInit<F> = F extends Uint8Array | string | number | boolean | bigint
  ? F
  : F extends ReadonlyArray<infer U>
    ? ReadonlyArray<FieldInit<U>>
    : F extends { $typeName: string }
      ? MessageInit<F>
      : F

// grpc-js hands deserializers Buffers and wants Buffers back from serializers.
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

function serializer(desc: DescMessage): (msg: unknown) => Buffer {
  return (msg) => toBuffer(encodeMessage(desc, msg as MessageInitShape<DescMessage>))
}

function deserializer(desc: DescMessage): (buf: Buffer) => unknown {
  return (buf) => decodeMessage(desc, buf)
}

export interface WorkloadApiServiceDefinition extends grpc.ServiceDefinition {
  readonly FetchX509SVID: grpc.MethodDefinition<Empty, X509SVIDResponse>
  readonly FetchX509Bundles: grpc.MethodDefinition<Empty, X509BundlesResponse>
  readonly FetchJWTSVID: grpc.MethodDefinition<MessageInit<JWTSVIDRequest>, JWTSVIDResponse>
  readonly FetchJWTBundles: grpc.MethodDefinition<Empty, JWTBundlesResponse>
  readonly ValidateJWTSVID: grpc.MethodDefinition<
    MessageInit<ValidateJWTSVIDRequest>,
    ValidateJWTSVIDResponse
  >
  readonly FetchWITSVID: grpc.MethodDefinition<MessageInit<WITSVIDRequest>, WITSVIDResponse>
  readonly FetchWITBundles: grpc.MethodDefinition<Empty, WITBundlesResponse>
}

/** Handler types for a server implementing the service (e.g. the dev Workload API). */
export interface WorkloadApiHandlers extends grpc.UntypedServiceImplementation {
  FetchX509SVID: grpc.handleServerStreamingCall<Empty, MessageInit<X509SVIDResponse>>
  FetchX509Bundles: grpc.handleServerStreamingCall<Empty, MessageInit<X509BundlesResponse>>
  FetchJWTSVID: grpc.handleUnaryCall<JWTSVIDRequest, MessageInit<JWTSVIDResponse>>
  FetchJWTBundles: grpc.handleServerStreamingCall<Empty, MessageInit<JWTBundlesResponse>>
  ValidateJWTSVID: grpc.handleUnaryCall<ValidateJWTSVIDRequest, MessageInit<ValidateJWTSVIDResponse>>
  FetchWITSVID: grpc.handleServerStreamingCall<WITSVIDRequest, MessageInit<WITSVIDResponse>>
  FetchWITBundles: grpc.handleServerStreamingCall<Empty, MessageInit<WITBundlesResponse>>
}

function buildService(): WorkloadApiServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {}
  for (const m of SpiffeWorkloadAPI.methods) {
    definition[m.name] = {
      path: methodPath(m.name as WorkloadApiMethod),
      originalName: m.name,
      requestStream: m.methodKind === 'client_streaming' || m.methodKind === 'bidi_streaming',
      responseStream: m.methodKind === 'server_streaming' || m.methodKind === 'bidi_streaming',
      requestSerialize: serializer(m.input),
      requestDeserialize: deserializer(m.input),
      responseSerialize: serializer(m.output),
      responseDeserialize: deserializer(m.output),
    }
  }
  return definition as unknown as WorkloadApiServiceDefinition
}

export const WORKLOAD_API_SERVICE: WorkloadApiServiceDefinition = buildService()
