/**
 * A bundle endpoint as a client is configured with it (SPIFFE_Federation.md
 * §5.1): the trust domain the bundle belongs to, the URL, and the profile.
 * The three are configured, never inferred from each other (§7.2): the
 * trust domain is not the URL's host, and the profile is not guessed.
 */
import { SpiffeError } from '../errors.ts'
import { SpiffeId, TrustDomain } from '../spiffe-id.ts'

/** `https_web`: Web PKI (§5.2.1). The server certificate must chain to a trusted CA and name the URL's host. */
export interface HttpsWebProfile {
  readonly type: 'https_web'
  /**
   * Roots to trust instead of Node's Web PKI store (PEM or DER), for a
   * private CA or tests. Default: Node's bundled public roots.
   */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>
}

/** `https_spiffe` (§5.2.2): the server presents an X509-SVID for exactly this SPIFFE ID. */
export interface HttpsSpiffeProfile {
  readonly type: 'https_spiffe'
  readonly endpointSpiffeId: SpiffeId | string
}

/** How a bundle endpoint is authenticated (§5.2); never inferred from the URL (§7.2). */
export type BundleEndpointProfile = HttpsWebProfile | HttpsSpiffeProfile

/** A bundle endpoint's configuration (§5.1): the three parameters every client needs. */
export interface BundleEndpoint {
  /** The trust domain whose bundle the endpoint serves. */
  readonly trustDomain: TrustDomain | string
  /** `https://host[:port]/path`, no userinfo. */
  readonly url: string | URL
  readonly profile: BundleEndpointProfile
}

/** A BundleEndpoint with its parts parsed and checked (not exported from the package). */
export interface ResolvedEndpoint {
  trustDomain: TrustDomain
  url: URL
  profile: BundleEndpointProfile
  endpointSpiffeId: SpiffeId | undefined
}

function badArgument(message: string): SpiffeError {
  return new SpiffeError('SPIFFE_ARGUMENT_INVALID', message)
}

/** Checks a bundle endpoint URL against §5.2.1.1/§5.2.2.1: scheme https, no userinfo. */
export function checkEndpointUrl(input: string | URL, what = 'bundle endpoint URL'): URL {
  let url: URL
  try {
    url = new URL(String(input))
  } catch {
    throw badArgument(`${what} ${JSON.stringify(String(input).slice(0, 200))} is not a URL`)
  }
  if (url.protocol !== 'https:') throw badArgument(`${what} ${url.origin} must use https`)
  if (url.username !== '' || url.password !== '') throw badArgument(`${what} must not carry userinfo`)
  if (url.hash !== '') throw badArgument(`${what} must not carry a fragment`)
  return url
}

export function resolveEndpoint(endpoint: BundleEndpoint): ResolvedEndpoint {
  const trustDomain =
    typeof endpoint.trustDomain === 'string' ? TrustDomain.parse(endpoint.trustDomain) : endpoint.trustDomain
  const url = checkEndpointUrl(endpoint.url)
  const profile = endpoint.profile
  if (profile?.type === 'https_web') return { trustDomain, url, profile, endpointSpiffeId: undefined }
  if (profile?.type === 'https_spiffe') {
    const id =
      typeof profile.endpointSpiffeId === 'string'
        ? SpiffeId.parse(profile.endpointSpiffeId)
        : profile.endpointSpiffeId
    if (!(id instanceof SpiffeId)) throw badArgument('https_spiffe needs endpointSpiffeId')
    return { trustDomain, url, profile, endpointSpiffeId: id }
  }
  throw badArgument(
    `unknown bundle endpoint profile ${JSON.stringify((profile as { type?: unknown })?.type)}`,
  )
}
