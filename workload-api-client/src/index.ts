/**
 * SPIFFE for Node.js: SPIFFE IDs and matchers, X.509-SVIDs and JWT-SVIDs,
 * bundles, a client for the SPIFFE Workload API, and SPIFFE mTLS for
 * node:tls, https and http2 servers and clients (`fetch` through the
 * `workload-api-client/undici` entry point).
 *
 * Every name here is deliberate and recorded in `etc/workload-api-client.api.md`;
 * a test fails when this list changes without that report. Helpers the
 * library uses inside (DER reading, strict JSON, backoff, the generated
 * protobuf code) live under `src/internal/` and are not exported.
 *
 * @packageDocumentation
 */
export {
  ENDPOINT_SOCKET_ENV,
  type EndpointAddress,
  type EndpointAddressReason,
  parseEndpointAddress,
  resolveEndpointAddress,
} from './address.ts'
export { BundleSet, type TrustDomainBound } from './bundle-set.ts'
export {
  type CallOptions,
  type JwtSvidParams,
  WorkloadApiClient,
  type WorkloadApiClientOptions,
} from './client.ts'
export {
  ERROR_CODES,
  isSpiffeError,
  SpiffeError,
  type SpiffeErrorCode,
  type SpiffeErrorOptions,
} from './errors.ts'
export type {
  BundleEndpoint,
  BundleEndpointProfile,
  HttpsSpiffeProfile,
  HttpsWebProfile,
} from './federation/endpoint.ts'
export {
  DEFAULT_BUNDLE_FETCH_TIMEOUT_MS,
  type FetchSpiffeBundleOptions,
  fetchSpiffeBundle,
  MAX_BUNDLE_ENDPOINT_REDIRECTS,
} from './federation/fetch.ts'
export {
  BundleEndpointServer,
  type BundleEndpointServerOptions,
  type BundleEndpointServerProfile,
  DEFAULT_REFRESH_HINT_SECONDS,
  type X509SvidProvider,
} from './federation/server.ts'
export {
  DEFAULT_BUNDLE_REFRESH_MS,
  DEFAULT_MAX_BUNDLE_REFRESH_MS,
  DEFAULT_MIN_BUNDLE_REFRESH_MS,
  type FederatedBundleErrorListener,
  type FederatedBundleListener,
  FederatedBundleSource,
  type FederatedBundleSourceOptions,
} from './federation/source.ts'
export {
  type IdMatcher,
  matchAny,
  matchAnyOf,
  matchId,
  matchMemberOf,
  matchOneOf,
  matchPathPrefix,
  matchPattern,
} from './id-matcher.ts'
export type { BackoffStrategy } from './internal/backoff.ts'
export type { JsonObject, JsonValue } from './internal/strict-json.ts'
export {
  type Jwk,
  type JwtAuthority,
  JwtBundle,
  type JwtBundleSource,
  type JwtKeyReason,
  jwtAuthority,
  jwtBundleSource,
  MAX_JWKS_BYTES,
} from './jwt-bundle.ts'
export { type JwtFetchParams, JwtSource, type JwtSourceOptions } from './jwt-source.ts'
export {
  clearJwtSvidCache,
  DEFAULT_JWT_LEEWAY_MS,
  JWT_SVID_ALGORITHMS,
  JwtSvid,
  type JwtSvidAlgorithm,
  type JwtSvidReason,
  type JwtSvidValidateOptions,
  MAX_JWT_SVID_LENGTH,
} from './jwt-svid.ts'
export type { X509Context } from './responses.ts'
export type { SourceClientOptions } from './source-client.ts'
export {
  JWT_SVID_USE,
  MAX_BUNDLE_BYTES,
  MAX_BUNDLE_MAP_BYTES,
  parseSpiffeBundleMap,
  SpiffeBundle,
  type SpiffeBundleParts,
  type SpiffeBundleReason,
  X509_SVID_USE,
} from './spiffe-bundle.ts'
export {
  MAX_ID_LENGTH,
  MAX_TRUST_DOMAIN_LENGTH,
  SPIFFE_SCHEME_PREFIX,
  SpiffeId,
  type SpiffeIdReason,
  TrustDomain,
} from './spiffe-id.ts'
export { type ChainPolicyReason, checkChainPolicy, type PeerPurpose } from './tls/chain-policy.ts'
export {
  type SpiffeConnectCallback,
  type SpiffeConnectFailure,
  type SpiffeConnectTarget,
  SpiffeTlsClient,
  type SpiffeTlsClientOptions,
  spiffeTlsClient,
} from './tls/client.ts'
export type { TlsProtocolOptions, X509TlsSource } from './tls/credentials.ts'
export { peerChain, peerIdOf, reverifyTlsPeer, type VerifyTlsPeerOptions, verifyTlsPeer } from './tls/peer.ts'
export { SpiffeTlsServer, type SpiffeTlsServerOptions, spiffeTlsServer } from './tls/server.ts'
export {
  MAX_CHAIN_LENGTH,
  type VerifiedX509Svid,
  type VerifyX509Options,
  verifyX509Svid,
} from './verify-x509.ts'
export type { Watch, WatchClock, Watcher } from './watch.ts'
export { X509Bundle, type X509BundleSource, x509BundleSource } from './x509-bundle.ts'
export { clearX509Cache } from './x509-cert.ts'
export {
  type SourceErrorListener,
  type SourceStatus,
  type WaitOptions,
  X509Source,
  type X509SourceListener,
  type X509SourceOptions,
} from './x509-source.ts'
export { X509Svid } from './x509-svid.ts'
