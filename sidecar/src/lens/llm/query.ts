/**
 * Provider keys an agent may put in the query string rather than a header
 * (Azure OpenAI's `api-key`, Google's `key`, and `api_key`, which several
 * OpenAI-compatible servers read). The sidecar's key replaces the agent's,
 * so these never travel upstream: the rest of the query is kept byte for
 * byte, in its order.
 */

/** Query parameter names that carry a provider key, compared after decoding and in lower case. */
export const AGENT_CREDENTIAL_PARAMS: ReadonlySet<string> = new Set(['api-key', 'key', 'api_key'])

/** The request target without credential parameters; the same string when it has none. */
export function stripCredentialParams(target: string): string {
  const q = target.indexOf('?')
  if (q === -1) return target
  const pairs = target.slice(q + 1).split('&')
  const kept = pairs.filter((pair) => !AGENT_CREDENTIAL_PARAMS.has(paramName(pair)))
  if (kept.length === pairs.length) return target
  const path = target.slice(0, q)
  // Empty pieces (`a=1&&b=2`) carry nothing; without any parameter left, no `?` either.
  const rest = kept.filter((pair) => pair !== '')
  return rest.length === 0 ? path : `${path}?${rest.join('&')}`
}

function paramName(pair: string): string {
  const eq = pair.indexOf('=')
  const raw = (eq === -1 ? pair : pair.slice(0, eq)).replaceAll('+', ' ')
  try {
    return decodeURIComponent(raw).toLowerCase()
  } catch {
    // Not valid percent-encoding: a server that reads it anyway sees these bytes; compare them as they are.
    return raw.toLowerCase()
  }
}
