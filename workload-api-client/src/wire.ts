/**
 * `workload-api-client/wire`: the Workload API on the wire, for code that
 * must speak it directly, such as a Workload API server for tests (the dev
 * server in svidecar's `certs` package). Applications use the main entry
 * point instead. The messages are generated from `proto/workload.proto` by
 * protoc-gen-es; this entry point re-exports only the gRPC service
 * definition, the security header and the message types.
 *
 * @packageDocumentation
 */

export type {
  JWTBundlesResponse,
  JWTSVID,
  JWTSVIDRequest,
  JWTSVIDResponse,
  ValidateJWTSVIDRequest,
  WITBundlesResponse,
  WITSVID,
  WITSVIDRequest,
  WITSVIDResponse,
  X509BundlesResponse,
  X509SVID,
  X509SVIDResponse,
} from './internal/gen/workload_pb.ts'
export type { JsonObject, JsonValue } from './internal/strict-json.ts'
export {
  type Empty,
  type FieldInit,
  type MessageInit,
  methodPath,
  SECURITY_HEADER_KEY,
  SECURITY_HEADER_VALUE,
  SERVICE_NAME,
  type ValidateJWTSVIDResponse,
  WORKLOAD_API_SERVICE,
  type WorkloadApiHandlers,
  type WorkloadApiMethod,
  type WorkloadApiServiceDefinition,
} from './internal/wire/service.ts'
