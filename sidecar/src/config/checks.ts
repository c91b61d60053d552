/**
 * Meaning checks for what a schema cannot see and `run` would trip over:
 * two listeners on one port, a CA file that is missing or not PEM, a peer-ID
 * header that already means something in HTTP, timeouts Node would refuse,
 * and routes an earlier route always takes first.
 */
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { formatHostPort, type HostPort } from './address.ts'
import { type Check, type Issues, type Path, str, withJsonSchema } from './schema.ts'

/**
 * Header names the sidecar must not write the peer's SPIFFE ID into: each
 * already means something to HTTP, and the outbound side strips the peer-ID
 * header from every request the local app sends, so naming one of these
 * would also drop the app's own field.
 */
const HTTP_HEADERS = new Map<string, string>([
  ['host', 'routes the request'],
  ['content-length', 'frames the body'],
  ['transfer-encoding', 'frames the body'],
  ['content-type', 'describes the body'],
  ['content-encoding', 'describes the body'],
  ['connection', 'manages the connection'],
  ['keep-alive', 'manages the connection'],
  ['proxy-connection', 'manages the connection'],
  ['te', 'negotiates transfer codings'],
  ['trailer', 'announces trailer fields'],
  ['upgrade', 'switches protocols (WebSocket)'],
  ['expect', 'asks for 100-continue'],
  ['authorization', "carries the client's credentials"],
  ['proxy-authorization', "carries the client's credentials"],
  ['cookie', "carries the client's session"],
  ['set-cookie', 'sets a session'],
  ['x-svidecar-error', "marks the sidecar's own refusals"],
])

/** A header name of our own for the verified peer ID (`x-spiffe-id` by default). */
export const peerIdHeader: Check<string> = (v, path, issues) => {
  const name = str({ pattern: /^[A-Za-z0-9-]+$/, what: 'a header name' })(v, path, issues)
  if (name === undefined) return undefined
  const lower = name.toLowerCase()
  const meaning = lower.startsWith('sec-websocket-') ? 'is part of the WebSocket handshake' : undefined
  const why = meaning ?? (HTTP_HEADERS.has(lower) ? `${HTTP_HEADERS.get(lower)}` : undefined)
  if (why !== undefined) {
    issues.add(
      path,
      `"${name}" has a meaning in HTTP (it ${why}); name a header of your own, such as x-spiffe-id`,
    )
    return undefined
  }
  return name
}

withJsonSchema(peerIdHeader, {
  type: 'string',
  pattern: '^[A-Za-z0-9-]+$',
  description: 'a header name of your own (not one HTTP gives a meaning)',
})

export interface BoundAddress {
  path: Path
  what: string
  address: HostPort
}

/** Two listeners on one port fail the second bind with EADDRINUSE; a wildcard host covers the others. */
export function checkAddressConflicts(bound: readonly BoundAddress[], issues: Issues): void {
  for (let i = 1; i < bound.length; i++) {
    const b = bound[i] as BoundAddress
    const first = bound.slice(0, i).find((a) => sharesPort(a.address, b.address))
    if (first !== undefined) {
      issues.add(
        b.path,
        `${formatHostPort(b.address)} collides with ${first.what} on ${formatHostPort(first.address)}: one port, one listener`,
      )
    }
  }
}

function sharesPort(a: HostPort, b: HostPort): boolean {
  // Port 0 asks the kernel for a free port: never a collision.
  if (a.port === 0 || a.port !== b.port) return false
  const x = a.host.toLowerCase()
  const y = b.host.toLowerCase()
  return x === y || covers(x, y) || covers(y, x)
}

/** `::` takes IPv4 too (Node listens dual-stack); `0.0.0.0` takes every IPv4 address and name. */
function covers(wildcard: string, other: string): boolean {
  if (wildcard === '::') return true
  return wildcard === '0.0.0.0' && isIP(other) !== 6
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g

/** The CA file must exist and hold PEM certificates only Node can parse; otherwise every handshake fails later. */
export function checkCaFile(
  file: string,
  path: Path,
  issues: Issues,
  read: (file: string) => string = (f) => readFileSync(f, 'utf8'),
): void {
  let text: string
  try {
    text = read(file)
  } catch (err) {
    issues.add(path, `cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
    return
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) {
    issues.add(path, `"${file}" holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)`)
    return
  }
  for (const [n, block] of blocks.entries()) {
    try {
      new X509Certificate(block)
    } catch {
      issues.add(path, `"${file}": certificate ${n + 1} of ${blocks.length} is not a valid X.509 certificate`)
      return
    }
  }
}

export interface RouteMatch {
  host?: string
  pathPrefix?: string
}

/**
 * First match wins (listener/routes.ts), so a route is dead when an earlier
 * one takes every request it would: same host or none, and a path prefix
 * that is its own or one of its ancestors at a segment boundary.
 */
export function checkRoutesReachable(routes: readonly RouteMatch[], path: Path, issues: Issues): void {
  routes.forEach((route, j) => {
    // The request's Host is compared without its port (an IPv6 literal keeps its brackets).
    if (route.host?.includes(':') && !/^\[[^\]]*\]$/.test(route.host)) {
      issues.add(
        [...path, j, 'match', 'host'],
        `unreachable: "${route.host}" has a port, and hosts are compared without it`,
      )
      return
    }
    const i = routes.slice(0, j).findIndex((earlier) => takesAll(earlier, route))
    if (i !== -1) {
      issues.add(
        [...path, j],
        `unreachable: route ${i} (${describe(routes[i] as RouteMatch)}) takes every request this one would`,
      )
    }
  })
}

function takesAll(earlier: RouteMatch, later: RouteMatch): boolean {
  if (earlier.host !== undefined && earlier.host.toLowerCase() !== later.host?.toLowerCase()) return false
  const p = trimSlash(earlier.pathPrefix ?? '/')
  if (p === '/') return true
  const q = trimSlash(later.pathPrefix ?? '/')
  return q === p || q.startsWith(`${p}/`)
}

function trimSlash(prefix: string): string {
  return prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
}

function describe(r: RouteMatch): string {
  const parts = [
    r.host === undefined ? '' : `host ${r.host}`,
    r.pathPrefix === undefined ? '' : `pathPrefix ${r.pathPrefix}`,
  ].filter(Boolean)
  return parts.length === 0 ? 'matches everything' : parts.join(', ')
}
