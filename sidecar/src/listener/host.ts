/**
 * Host syntax (RFC 9110 §7.2: uri-host [ ":" port ], uri-host as in RFC 3986
 * §3.2.2) and authority comparison. A Host outside this grammar is refused:
 * routes match on it, and two parsers may cut a malformed one differently.
 */

// reg-name (which covers IPv4address) or an IPv6 literal in brackets; then an optional port.
const HOST = /^(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?$/

export function validHost(value: string): boolean {
  return HOST.test(value)
}

const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443' }

/** Lower-case host and the port, the scheme's default port (or an empty one) dropped. */
function canonical(authority: string, scheme: string): string {
  const a = authority.trim().toLowerCase()
  const close = a.startsWith('[') ? a.indexOf(']') : -1
  const colon = a.indexOf(':', close === -1 ? 0 : close)
  if (colon === -1) return a
  const port = a.slice(colon + 1)
  return port === '' || port === DEFAULT_PORT[scheme] ? a.slice(0, colon) : a
}

export function sameAuthority(host: string, authority: string, scheme: string): boolean {
  return canonical(host, scheme) === canonical(authority, scheme)
}
