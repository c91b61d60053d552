/**
 * Turns an authorizer from the config into a library matcher. The closed set
 * mirrors go-spiffe's authorizers (any, ID, one of, member of) plus path
 * patterns; each compares parsed IDs, never strings by prefix. A list of
 * them allows an ID that any one allows.
 */
import {
  type IdMatcher,
  matchAny,
  matchAnyOf,
  matchId,
  matchMemberOf,
  matchOneOf,
  matchPattern,
} from 'workload-api-client'

export type AuthorizerKind =
  | { any: true }
  | { exact: string }
  | { oneOf: readonly string[] }
  | { trustDomain: string }
  | { pattern: string }

/** One kind, or a non-empty list of kinds (any of them). */
export type AuthorizerSpec = AuthorizerKind | readonly AuthorizerKind[]

export function authorizerFromSpec(spec: AuthorizerSpec): IdMatcher {
  if (isList(spec)) return matchAnyOf(...spec.map(kindMatcher))
  return kindMatcher(spec)
}

/** The one SPIFFE ID a spec admits (`exact`, or a list of one), or undefined when it admits more or any. */
export function exactIdOf(spec: AuthorizerSpec): string | undefined {
  const kinds = isList(spec) ? spec : [spec]
  const ids = new Set<string>()
  for (const k of kinds) {
    if ('exact' in k) ids.add(k.exact)
    else if ('oneOf' in k) for (const id of k.oneOf) ids.add(id)
    else return undefined
  }
  return ids.size === 1 ? [...ids][0] : undefined
}

function isList(spec: AuthorizerSpec): spec is readonly AuthorizerKind[] {
  return Array.isArray(spec)
}

function kindMatcher(spec: AuthorizerKind): IdMatcher {
  if ('exact' in spec) return matchId(spec.exact)
  if ('oneOf' in spec) return matchOneOf(...spec.oneOf)
  if ('trustDomain' in spec) return matchMemberOf(spec.trustDomain)
  if ('pattern' in spec) return matchPattern(spec.pattern)
  return matchAny()
}
