/**
 * Turns a request target into the one form a proxy may forward: origin-form
 * (RFC 9112 §3.2.1), a path that starts with "/" and cannot climb out of the
 * upstream's base path. Absolute-form (§3.2.2) is converted, its authority
 * becoming the Host; a Host that names another authority is refused, since
 * the route was picked by one and the upstream would act on the other.
 * Dot-segments are resolved as RFC 3986 §5.2.4 does, counting "%2e" as "."
 * (§6.2.2.3: the same character), and other escaped unreserved characters
 * are decoded (§6.2.2.2), so the route table, the lenses and the upstream
 * read the same path; one that climbs above "/" is refused.
 */
import type { IncomingMessage } from 'node:http'
import { SvidecarError } from '../errors/index.ts'
import { sameAuthority, validHost } from './host.ts'

function invalid(reason: string, message: string): SvidecarError {
  return new SvidecarError('SVD_REQUEST_INVALID', message, { reason })
}

const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s
const DOT = /%2e/gi
// Characters some servers decode into a path separator before resolving dot-segments.
const SEPARATOR_LIKE = /%2f|%5c|\\/gi

/**
 * Rewrites `req.url` to origin-form (and sets Host from an absolute-form authority when the client sent none),
 * or returns why the target is refused. Runs before routing.
 */
export function normalizeTarget(req: IncomingMessage): SvidecarError | undefined {
  // RFC 9110 §9.3.8: TRACE echoes the request as received, and a proxy's request carries what the sidecar added
  // (the verified peer ID, a provider key): never forwarded.
  if (req.method === 'TRACE')
    return new SvidecarError('SVD_REQUEST_UNSUPPORTED', 'TRACE is not forwarded', { reason: 'TRACE' })
  const target = req.url ?? ''
  if (target.includes('#')) return invalid('FRAGMENT_IN_TARGET', 'a request target cannot carry a fragment')
  let originForm = target
  if (!target.startsWith('/')) {
    // Asterisk-form addresses the server itself, not a resource behind it: valid HTTP, but nothing to forward.
    if (target === '*')
      return new SvidecarError('SVD_REQUEST_UNSUPPORTED', `${req.method} * is not forwarded`, {
        reason: 'ASTERISK_FORM',
      })
    const m = ABSOLUTE.exec(target)
    if (m === null) return invalid('BAD_TARGET', 'the request target is neither a path nor an absolute URL')
    const scheme = (m[1] as string).toLowerCase()
    const authority = m[2] as string
    if (scheme !== 'http' && scheme !== 'https')
      return invalid('BAD_TARGET_SCHEME', `the absolute-form target has scheme "${scheme}"`)
    if (authority.includes('@'))
      return invalid('USERINFO_IN_TARGET', 'the absolute-form target carries user information')
    if (authority === '' || !validHost(authority))
      return invalid('BAD_TARGET_AUTHORITY', 'the absolute-form target has no valid authority')
    const host = req.headers.host
    if (host === undefined) {
      req.headers.host = authority
      req.rawHeaders.push('Host', authority)
    } else if (!sameAuthority(host, authority, scheme)) {
      return invalid('HOST_MISMATCH', 'the Host header names another authority than the request target')
    }
    const rest = m[3] as string
    originForm = rest.startsWith('/') ? rest : `/${rest}`
  }
  const q = originForm.indexOf('?')
  const path = q === -1 ? originForm : originForm.slice(0, q)
  const resolved = removeDotSegments(path)
  // A second reading for servers that decode %2f, %5c or "\" into "/" before resolving.
  if (resolved === undefined || climbs(path.replace(SEPARATOR_LIKE, '/'))) {
    return invalid('PATH_ESCAPES_ROOT', 'the request path climbs above "/" with dot-segments')
  }
  const normal = resolved.includes('%') ? decodeUnreserved(resolved) : resolved
  req.url = q === -1 ? normal : normal + originForm.slice(q)
  return undefined
}

const ESCAPE = /%([0-9A-Fa-f]{2})/g
const UNRESERVED = /^[A-Za-z0-9\-._~]$/

/**
 * RFC 3986 §6.2.2.2: an escaped unreserved character is that character. The route table and the lenses match
 * paths as text; an app that decodes `/%6Dcp` serves `/mcp`, so they must read it as `/mcp` too. Reserved
 * characters (`%2F`), `%25` and malformed escapes are left as they are.
 */
function decodeUnreserved(path: string): string {
  return path.replace(ESCAPE, (escaped, hex: string) => {
    const ch = String.fromCharCode(Number.parseInt(hex, 16))
    return UNRESERVED.test(ch) ? ch : escaped
  })
}

function isDot(segment: string): boolean {
  return segment.length <= 3 && segment.replace(DOT, '.') === '.'
}

function isDotDot(segment: string): boolean {
  return segment.length <= 6 && segment.replace(DOT, '.') === '..'
}

/** RFC 3986 §5.2.4 on an absolute path, or undefined when a ".." would leave the root. */
export function removeDotSegments(path: string): string | undefined {
  if (!path.includes('.') && !/%2e/i.test(path)) return path
  const segments = path.split('/').slice(1)
  const out: string[] = []
  let endsAsDirectory = false
  for (const segment of segments) {
    endsAsDirectory = false
    if (isDot(segment)) endsAsDirectory = true
    else if (isDotDot(segment)) {
      if (out.length === 0) return undefined
      out.pop()
      endsAsDirectory = true
    } else out.push(segment)
  }
  return `/${out.join('/')}${endsAsDirectory && out.length > 0 ? '/' : ''}`
}

function climbs(path: string): boolean {
  return path.includes('.') && removeDotSegments(path.startsWith('/') ? path : `/${path}`) === undefined
}
