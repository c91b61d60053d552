/**
 * The TLS parameters every listener and upstream uses, by profile. The
 * names follow Mozilla's server-side TLS guidelines, which Envoy and Istio
 * users already reason in:
 *
 * - `intermediate` (default): TLS 1.2 and 1.3; on TLS 1.2 only AEAD suites
 *   with ECDHE key exchange (no CBC, no static RSA, no finite-field DHE).
 * - `modern`: TLS 1.3 only, for legs where both ends are ours (sidecar to
 *   sidecar) or known to be current.
 *
 * `tls.minVersion` may raise the floor of a profile, never lower it.
 */
export const TLS_PROFILES = ['intermediate', 'modern'] as const
export type TlsProfile = (typeof TLS_PROFILES)[number]

// Named explicitly, so the TLS 1.3 suites are the profile's and not whatever the OpenSSL build enables.
const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']
const TLS12_ECDHE_AEAD = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
]

export interface TlsParameters {
  readonly profile: TlsProfile
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3'
  readonly maxVersion: 'TLSv1.3'
  /** OpenSSL cipher string: TLS 1.3 suites and TLS 1.2 suites in one list, as node:tls takes it. */
  readonly ciphers: string
}

export function tlsParameters(profile: TlsProfile, minVersion: 'TLSv1.2' | 'TLSv1.3'): TlsParameters {
  const floor = profile === 'modern' ? 'TLSv1.3' : minVersion
  return {
    profile,
    minVersion: floor,
    maxVersion: 'TLSv1.3',
    ciphers: (floor === 'TLSv1.3' ? TLS13_SUITES : [...TLS13_SUITES, ...TLS12_ECDHE_AEAD]).join(':'),
  }
}

/** Versions and suites of a profile, as node:tls and the library's TLS helpers take them. */
export function protocolOptions(params: TlsParameters) {
  return { minVersion: params.minVersion, maxVersion: params.maxVersion, ciphers: params.ciphers }
}
