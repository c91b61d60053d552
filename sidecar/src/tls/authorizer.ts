/**
 * Turns an authorizer from the config into a library matcher. The closed set
 * mirrors go-spiffe's authorizers (any, ID, one of, member of) plus path
 * patterns; each compares parsed IDs, never strings by prefix.
 */
import {
  type IdMatcher,
  matchAny,
  matchId,
  matchMemberOf,
  matchOneOf,
  matchPattern,
} from 'workload-api-client'

export type AuthorizerSpec =
  | { any: true }
  | { exact: string }
  | { oneOf: readonly string[] }
  | { trustDomain: string }
  | { pattern: string }

export function authorizerFromSpec(spec: AuthorizerSpec): IdMatcher {
  if ('exact' in spec) return matchId(spec.exact)
  if ('oneOf' in spec) return matchOneOf(...spec.oneOf)
  if ('trustDomain' in spec) return matchMemberOf(spec.trustDomain)
  if ('pattern' in spec) return matchPattern(spec.pattern)
  return matchAny()
}
