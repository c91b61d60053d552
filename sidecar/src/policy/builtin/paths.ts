/**
 * HTTP paths and MCP resource URIs as segment lists, for matching. Policy
 * matches parsed structures, never substrings: a path is split at `/`,
 * percent-encoded unreserved characters are decoded (RFC 3986 §6.2.2.2, so
 * `/%61dmin` is `/admin`), and a path a server could resolve differently
 * from its text (dot segments, empty segments) is refused instead of
 * matched.
 */
import { type SegmentPattern, segmentPattern } from './segment-trie.ts'

const UNRESERVED = /[A-Za-z0-9\-._~]/
const HEX = /^[0-9A-Fa-f]{2}$/

/** Decodes escapes of unreserved characters and upper-cases the rest; undefined for a bad escape. */
function normalizeSegment(seg: string): string | undefined {
  if (!seg.includes('%')) return seg
  let out = ''
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i] as string
    if (c !== '%') {
      out += c
      continue
    }
    const hex = seg.slice(i + 1, i + 3)
    if (!HEX.test(hex)) return undefined
    const ch = String.fromCharCode(Number.parseInt(hex, 16))
    out += UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`
    i += 2
  }
  return out
}

/** No escapes, query, fragment, empty or dot segments: the common case, split without a second look. */
function isNormal(path: string): boolean {
  if (path.charCodeAt(0) !== 0x2f) return false
  let segStart = 1
  let dots = 0
  for (let i = 1; i <= path.length; i++) {
    const c = i === path.length ? 0x2f : path.charCodeAt(i)
    if (c === 0x25 || c === 0x3f || c === 0x23 || c === 0x5c || c === 0x3b) return false // % ? # \ ;
    if (c === 0x2f) {
      const len = i - segStart
      // An empty segment is fine only as the last one (a trailing slash, or "/").
      if (len === 0 && i !== path.length) return false
      if (len > 0 && len === dots && len <= 2) return false
      segStart = i + 1
      dots = 0
    } else if (c === 0x2e) dots++
  }
  return true
}

/** What some servers decode into "/" before they resolve dot-segments (after normalizeSegment: escapes upper-case). */
const SEPARATOR_LIKE = /%2F|%5C|\\/

/** A dot segment, also with path parameters (`..;jsessionid=1`), which Tomcat and Spring strip before resolving. */
function isDotWithParams(part: string): boolean {
  const semi = part.indexOf(';')
  const name = semi === -1 ? part : part.slice(0, semi)
  return name === '.' || name === '..'
}

/**
 * Whether a segment holds a `.` or `..` once a server reads its encoded slashes (or backslashes) as `/`, or
 * strips its path parameters.
 */
function hidesDotSegment(seg: string): boolean {
  if (!SEPARATOR_LIKE.test(seg)) return seg.includes(';') && isDotWithParams(seg)
  return seg.split(SEPARATOR_LIKE).some(isDotWithParams)
}

/**
 * The segments of an HTTP request path (a query or fragment is cut off), or
 * a string saying why the path cannot be matched safely. `/` is `['']`; a
 * trailing slash keeps an empty last segment.
 */
export function pathSegments(path: string): string[] | string {
  if (isNormal(path)) return path.slice(1).split('/')
  let p = path
  const cut = p.search(/[?#]/)
  if (cut !== -1) p = p.slice(0, cut)
  if (!p.startsWith('/')) return 'the path does not start with "/"'
  const raw = p.slice(1).split('/')
  const out: string[] = []
  for (let i = 0; i < raw.length; i++) {
    const seg = normalizeSegment(raw[i] as string)
    if (seg === undefined) return 'the path has a malformed percent-escape'
    if (seg === '' && i < raw.length - 1) return 'the path has an empty segment ("//")'
    if (seg === '.' || seg === '..') return 'the path has a dot segment'
    if (hidesDotSegment(seg))
      return 'the path has a dot segment once %2F, %5C or "\\" is read as "/" or ";" parameters are cut off'
    out.push(seg)
  }
  return out
}

/** Characters a request target never carries raw (RFC 3986 pchar, plus `*` for globs and `%` for escapes). */
const NOT_IN_TARGET = /[^A-Za-z0-9\-._~!$&'()*+,;=:@%]/gu

/**
 * A pattern segment as a request carries it: characters a target cannot hold raw (`é`, a space) become their
 * UTF-8 escapes (RFC 3987 §3.1), which clients send and normalizeSegment keeps upper-cased.
 */
function asInTarget(seg: string): string {
  try {
    return seg.replace(NOT_IN_TARGET, (ch) => encodeURIComponent(ch))
  } catch {
    throw new Error('is not valid Unicode')
  }
}

/** Parses a route path pattern (`/v1/models/*`, `/v1/**`, `/files/*.json`); throws with the problem. */
export function pathPattern(pattern: string): SegmentPattern[] {
  if (!pattern.startsWith('/')) throw new Error('must start with "/"')
  if (/[?#]/.test(pattern)) throw new Error('a path pattern has no query or fragment')
  const raw = pattern.slice(1).split('/')
  return raw.map((s, i) => {
    const normal = normalizeSegment(s)
    if (normal === undefined) throw new Error('malformed percent-escape')
    const seg = asInTarget(normal)
    if (seg === '' && i < raw.length - 1) throw new Error('empty segment ("//")')
    if (seg === '.' || seg === '..') throw new Error('dot segment')
    return segmentPattern(seg)
  })
}

/** A `.` or `..` segment in any spelling: %2e for a dot, and inside a segment once %2F, %5C or "\\" is read as "/". */
function isDotLike(seg: string): boolean {
  return seg
    .replace(/%2e/gi, '.')
    .split(/%2f|%5c|\\/i)
    .some((part) => part === '.' || part === '..')
}

/**
 * The segments of an MCP resource URI, split at `/` after the scheme
 * (`file:///a/b` is `file:`, ``, ``, `a`, `b`), or why it cannot be matched.
 */
export function uriSegments(uri: string): string[] | string {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(uri)) return 'the URI has no scheme'
  const segs = uri.split('/')
  for (const s of segs) {
    // The WHATWG URL parser (new URL, fileURLToPath) reads %2e as "." and, for file: and http(s):, "\\" as "/".
    if (s.includes('%') || s.includes('\\') ? isDotLike(s) : s === '.' || s === '..')
      return 'the URI has a dot segment'
  }
  return segs
}

/** Parses a resource URI pattern (`file:///repo/**`, `db://customers/*`); throws with the problem. */
export function uriPattern(pattern: string): SegmentPattern[] {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(pattern))
    throw new Error('must start with a URI scheme ("file:", "db:", ...)')
  if (pattern.slice(0, pattern.indexOf(':')).includes('*')) throw new Error('the scheme must be literal')
  return pattern.split('/').map((s) => {
    if (s === '.' || s === '..') throw new Error('dot segment')
    return segmentPattern(s)
  })
}
