/**
 * The bundle endpoint client (SPIFFE_Federation.md §5.2.1.4, §5.2.2.4): one
 * authenticated HTTPS GET, a strict size cap and deadline, and a document
 * that must parse as a SPIFFE bundle of the configured trust domain.
 *
 * `https_spiffe` runs no OpenSSL verification at all (no roots,
 * `rejectUnauthorized: false`): the presented chain is verified here with
 * verifyX509Svid against the bundle of the endpoint ID's own trust domain,
 * and the ID must equal the configured one, before the request is written.
 * Redirects are followed (a few, each to a valid endpoint URL, each checked
 * exactly like the first hop); the configured URL is used again next time.
 */
import { SpiffeError } from '../errors.ts'
import { matchId } from '../id-matcher.ts'
import { httpsGet } from '../internal/https-get.ts'
import { MAX_BUNDLE_BYTES, SpiffeBundle } from '../spiffe-bundle.ts'
import { verifyTlsPeer } from '../tls/peer.ts'
import type { X509BundleSource } from '../x509-bundle.ts'
import { type BundleEndpoint, checkEndpointUrl, type ResolvedEndpoint, resolveEndpoint } from './endpoint.ts'

export const DEFAULT_BUNDLE_FETCH_TIMEOUT_MS = 10_000
export const MAX_BUNDLE_ENDPOINT_REDIRECTS = 3

export interface FetchSpiffeBundleOptions {
  /**
   * `https_spiffe` only: the bundles that authenticate the endpoint's SVID;
   * the one of the endpoint ID's trust domain is used. For a self-serving
   * endpoint that is the foreign trust domain's bundle held so far (the
   * configured initial bundle, then the latest fetched one).
   */
  endpointBundles?: X509BundleSource | SpiffeBundle
  /** Connect, handshake, response and body together. Default 10 s. */
  timeoutMs?: number
  /** Default MAX_BUNDLE_BYTES (1 MiB). */
  maxBytes?: number
  signal?: AbortSignal
}

/**
 * Fetches the SPIFFE bundle of `endpoint.trustDomain`. Throws
 * SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE (reason NETWORK, TIMEOUT, HTTP_STATUS,
 * REDIRECT, ABORTED), SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED (WEB_PKI,
 * WRONG_SPIFFE_ID, SVID_UNVERIFIED, NO_ENDPOINT_BUNDLE) or SPIFFE_BUNDLE_INVALID
 * (TOO_LARGE, MALFORMED and the bundle parser's other reasons).
 */
export async function fetchSpiffeBundle(
  endpoint: BundleEndpoint,
  options: FetchSpiffeBundleOptions = {},
): Promise<SpiffeBundle> {
  const resolved = resolveEndpoint(endpoint)
  return fetchResolved(resolved, options)
}

/** fetchSpiffeBundle for an endpoint already resolved (not exported from the package). */
export async function fetchResolved(
  endpoint: ResolvedEndpoint,
  options: FetchSpiffeBundleOptions,
): Promise<SpiffeBundle> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_BUNDLE_FETCH_TIMEOUT_MS
  const maxBytes = options.maxBytes ?? MAX_BUNDLE_BYTES
  const what = `bundle endpoint of "${endpoint.trustDomain.name}"`
  const deadline = Date.now() + timeoutMs
  let url = endpoint.url
  for (let hop = 0; ; hop++) {
    const left = deadline - Date.now()
    if (left <= 0) {
      throw new SpiffeError(
        'SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE',
        `${what}: no answer within ${timeoutMs} ms`,
        {
          reason: 'TIMEOUT',
        },
      )
    }
    const res = await httpsGet({
      url,
      what: `${what} (${url.origin})`,
      timeoutMs: left,
      maxBytes,
      signal: options.signal,
      ...tlsFor(endpoint, options.endpointBundles, what),
    })
    if (res.status >= 200 && res.status < 300) return SpiffeBundle.parse(endpoint.trustDomain, res.body)
    if (isRedirect(res.status) && res.location !== undefined) {
      if (hop >= MAX_BUNDLE_ENDPOINT_REDIRECTS) {
        throw new SpiffeError(
          'SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE',
          `${what}: more than ${MAX_BUNDLE_ENDPOINT_REDIRECTS} redirects`,
          { reason: 'REDIRECT' },
        )
      }
      url = redirectTarget(url, res.location, what)
      continue
    }
    throw new SpiffeError('SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE', `${what}: HTTP status ${res.status}`, {
      reason: 'HTTP_STATUS',
    })
  }
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308
}

function redirectTarget(from: URL, location: string, what: string): URL {
  try {
    return checkEndpointUrl(new URL(location, from), 'redirect target')
  } catch (err) {
    throw new SpiffeError(
      'SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE',
      `${what}: refused a redirect that is not a valid bundle endpoint URL`,
      { reason: 'REDIRECT', cause: err },
    )
  }
}

function tlsFor(
  endpoint: ResolvedEndpoint,
  given: X509BundleSource | SpiffeBundle | undefined,
  what: string,
): Pick<Parameters<typeof httpsGet>[0], 'tls' | 'verify'> {
  const profile = endpoint.profile
  if (profile.type === 'https_web') {
    return {
      tls: {
        rejectUnauthorized: true,
        ...(profile.ca === undefined
          ? {}
          : { ca: Array.isArray(profile.ca) ? [...profile.ca] : (profile.ca as string) }),
      },
    }
  }
  const expected = endpoint.endpointSpiffeId
  const endpointBundles = given instanceof SpiffeBundle ? bundleSourceOf(given) : given
  if (expected === undefined || endpointBundles === undefined) {
    throw new SpiffeError(
      'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED',
      `${what}: https_spiffe needs a bundle for "${expected?.trustDomain.name ?? '?'}" to authenticate ${expected}`,
      { reason: 'NO_ENDPOINT_BUNDLE' },
    )
  }
  return {
    // An empty `ca` list (an absent one means Node's public roots) leaves OpenSSL no roots to
    // verify with, so it keeps the whole presented chain for us (nodejs/node#65579).
    tls: { rejectUnauthorized: false, ca: [] },
    // The same verification the TLS helpers run (chain to the endpoint's own trust domain, SVID rules,
    // serverAuth), with the configured endpoint ID as the only acceptable peer.
    verify: (socket) => {
      try {
        verifyTlsPeer(socket, endpointBundles, matchId(expected), { purpose: 'server' })
      } catch (err) {
        if (err instanceof SpiffeError && err.code === 'SPIFFE_PEER_UNAUTHORIZED')
          throw new SpiffeError(
            'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED',
            `${what}: the server's SVID is not the configured ${expected}: ${err.message}`,
            { reason: 'WRONG_SPIFFE_ID', cause: err },
          )
        const reason =
          err instanceof SpiffeError && err.code === 'SPIFFE_BUNDLE_NOT_FOUND'
            ? 'NO_ENDPOINT_BUNDLE'
            : 'SVID_UNVERIFIED'
        throw new SpiffeError(
          'SPIFFE_BUNDLE_ENDPOINT_UNAUTHENTICATED',
          `${what}: the server's X509-SVID does not verify: ${err instanceof Error ? err.message : String(err)}`,
          { reason, cause: err },
        )
      }
    },
  }
}

function bundleSourceOf(bundle: SpiffeBundle): X509BundleSource {
  return {
    getX509BundleForTrustDomain: (td) => (td.equals(bundle.trustDomain) ? bundle.x509 : undefined),
  }
}
