/**
 * Workload API endpoint addresses (SPIFFE_Workload_Endpoint.md §3–§4). Only `unix:` with an absolute path and `tcp://<ip>:<port>`
 * exist; everything else is a configuration error reported with one reason
 * per cause, at startup, never retried.
 *
 * Parsed by hand rather than with `new URL()`: WHATWG URL would accept
 * `unix://tmp/agent.sock` with authority `tmp`, and grpc-js would then dial
 * the relative path `agent.sock`.
 */
import { isIPv4, isIPv6 } from 'node:net'
import { SpiffeError } from './errors.ts'

export const ENDPOINT_SOCKET_ENV = 'SPIFFE_ENDPOINT_SOCKET'

export type EndpointAddress =
  | { kind: 'unix'; path: string; grpcTarget: string }
  | { kind: 'tcp'; host: string; port: number; grpcTarget: string }

/** Stable reasons carried by SPIFFE_WLAPI_ADDRESS_INVALID. */
export type EndpointAddressReason =
  | 'EMPTY'
  | 'BAD_SCHEME'
  | 'BAD_CHARACTER'
  | 'UNIX_AUTHORITY'
  | 'UNIX_RELATIVE'
  | 'UNIX_EMPTY_PATH'
  | 'TCP_OPAQUE'
  | 'TCP_HOST_NOT_IP'
  | 'TCP_PORT_MISSING'
  | 'TCP_BAD_PORT'
  | 'HAS_PATH'
  | 'HAS_QUERY'
  | 'HAS_FRAGMENT'
  | 'HAS_USERINFO'
  | 'NOT_CONFIGURED'

function invalid(reason: EndpointAddressReason, value: string, why: string): SpiffeError {
  return new SpiffeError(
    'SPIFFE_WLAPI_ADDRESS_INVALID',
    `Workload API address ${JSON.stringify(value)} ${why}`,
    {
      reason,
    },
  )
}

const HEX = /^[0-9A-Fa-f]{2}$/

/** RFC 3986 percent-decoding of a unix socket path, as go-spiffe's url.Parse does. */
function decodePath(path: string, value: string): string {
  if (!path.includes('%')) return path
  let out = ''
  let i = 0
  while (i < path.length) {
    const pct = path.indexOf('%', i)
    if (pct === -1) {
      out += path.slice(i)
      break
    }
    out += path.slice(i, pct)
    const hex = path.slice(pct + 1, pct + 3)
    if (!HEX.test(hex))
      throw invalid('BAD_CHARACTER', value, `has a malformed percent-escape at offset ${pct}`)
    out += String.fromCharCode(Number.parseInt(hex, 16))
    i = pct + 3
  }
  // Escapes decode to bytes; a path must be valid UTF-8 and free of NUL.
  const bytes = Buffer.from(out, 'latin1')
  let decoded: string
  try {
    decoded = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw invalid('BAD_CHARACTER', value, 'has percent-escapes that are not valid UTF-8')
  }
  if (decoded.includes('\0')) throw invalid('BAD_CHARACTER', value, 'has a NUL byte in its path')
  return decoded
}

function parseUnix(value: string, rest: string): EndpointAddress {
  let path = rest
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2)
    const authority = slash === -1 ? rest.slice(2) : rest.slice(2, slash)
    if (authority.includes('@')) throw invalid('HAS_USERINFO', value, 'must not contain user info')
    if (authority.length > 0) {
      throw invalid(
        'UNIX_AUTHORITY',
        value,
        `has authority "${authority}"; a unix socket address is unix:/abs/path or unix:///abs/path`,
      )
    }
    path = slash === -1 ? '' : rest.slice(slash)
  }
  if (path.length === 0) throw invalid('UNIX_EMPTY_PATH', value, 'has no socket path')
  if (!path.startsWith('/'))
    throw invalid('UNIX_RELATIVE', value, 'has a relative socket path; it must be absolute')
  const decoded = decodePath(path, value)
  // grpc-js would read a leading "//" as an empty authority and drop one slash.
  const grpcTarget = decoded.startsWith('//') ? `unix://${decoded}` : `unix:${decoded}`
  return { kind: 'unix', path: decoded, grpcTarget }
}

const DIGITS = /^[0-9]{1,5}$/

function parseTcp(value: string, rest: string): EndpointAddress {
  if (!rest.startsWith('//')) throw invalid('TCP_OPAQUE', value, 'must have the form tcp://<ip>:<port>')
  const slash = rest.indexOf('/', 2)
  if (slash !== -1) throw invalid('HAS_PATH', value, 'must not have a path')
  const authority = rest.slice(2)
  if (authority.includes('@')) throw invalid('HAS_USERINFO', value, 'must not contain user info')

  let host: string
  let portText: string | undefined
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']')
    if (close === -1) throw invalid('TCP_HOST_NOT_IP', value, 'has an unterminated IPv6 literal')
    host = authority.slice(1, close)
    const after = authority.slice(close + 1)
    if (after.length > 0 && !after.startsWith(':')) {
      throw invalid('TCP_HOST_NOT_IP', value, 'has characters after its IPv6 literal')
    }
    portText = after.length > 0 ? after.slice(1) : undefined
    // Zone IDs (%25eth0) are not addresses the endpoint can be bound to portably.
    if (!isIPv6(host) || host.includes('%'))
      throw invalid('TCP_HOST_NOT_IP', value, 'host must be an IP address')
  } else {
    const colon = authority.lastIndexOf(':')
    host = colon === -1 ? authority : authority.slice(0, colon)
    portText = colon === -1 ? undefined : authority.slice(colon + 1)
    if (!isIPv4(host)) {
      throw invalid('TCP_HOST_NOT_IP', value, 'host must be an IP address (IPv6 in brackets), not a name')
    }
  }
  if (portText === undefined || portText.length === 0) throw invalid('TCP_PORT_MISSING', value, 'has no port')
  const port = DIGITS.test(portText) ? Number(portText) : Number.NaN
  if (!(port >= 1 && port <= 65535)) throw invalid('TCP_BAD_PORT', value, 'has a port outside 1..65535')
  const grpcTarget = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  return { kind: 'tcp', host, port, grpcTarget }
}

/** Parses a Workload API endpoint address, strictly; throws SPIFFE_WLAPI_ADDRESS_INVALID. */
export function parseEndpointAddress(value: string): EndpointAddress {
  if (value.length === 0) throw invalid('EMPTY', value, 'is empty')
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c <= 0x20 || c === 0x7f) {
      throw invalid('BAD_CHARACTER', value, `has a space or control character at offset ${i}`)
    }
  }
  const colon = value.indexOf(':')
  // Schemes are case-insensitive (RFC 3986 §3.1), as in go-spiffe.
  const scheme = colon === -1 ? '' : value.slice(0, colon).toLowerCase()
  if (scheme !== 'unix' && scheme !== 'tcp') {
    // A bare path is how SPIRE's own -socketPath flags take the socket; say what the URI would be.
    const hint = value.startsWith('/') ? `; did you mean ${JSON.stringify(`unix://${value}`)}?` : ''
    throw invalid('BAD_SCHEME', value, `must use the "unix" or "tcp" scheme${hint}`)
  }
  const hash = value.indexOf('#')
  if (hash !== -1) throw invalid('HAS_FRAGMENT', value, 'must not have a fragment')
  if (value.includes('?')) throw invalid('HAS_QUERY', value, 'must not have a query')
  const rest = value.slice(colon + 1)
  return scheme === 'unix' ? parseUnix(value, rest) : parseTcp(value, rest)
}

/**
 * The address to dial: `explicit` when given, else `SPIFFE_ENDPOINT_SOCKET`
 * from `env`. Neither is a configuration error (reason NOT_CONFIGURED).
 */
export function resolveEndpointAddress(
  explicit?: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): EndpointAddress {
  if (explicit !== undefined) return parseEndpointAddress(explicit)
  const fromEnv = env[ENDPOINT_SOCKET_ENV]
  if (fromEnv === undefined) {
    throw new SpiffeError(
      'SPIFFE_WLAPI_ADDRESS_INVALID',
      `no Workload API address configured and ${ENDPOINT_SOCKET_ENV} is not set`,
      { reason: 'NOT_CONFIGURED' },
    )
  }
  try {
    return parseEndpointAddress(fromEnv)
  } catch (err) {
    if (err instanceof SpiffeError) {
      const options = err.reason === undefined ? { cause: err } : { reason: err.reason, cause: err }
      throw new SpiffeError(err.code, `${ENDPOINT_SOCKET_ENV}: ${err.message}`, options)
    }
    throw err
  }
}
