/**
 * Refuses requests that two HTTP implementations could read differently
 * (request smuggling, RFC 9112 §6.3 and §11.2) before a byte goes upstream.
 * Node's parser already refuses several of these; this check runs on the
 * raw header list anyway, because the proxy's safety must not rest on one
 * parser version's choices.
 */
import { SvidecarError } from '../errors/index.ts'
import { isHopByHop, lowerName } from '../forwarder/headers.ts'
import { validHost } from './host.ts'

export interface GuardOptions {
  /** End-to-end fields other than Host and Content-Length; see UNCOUNTED_FIELDS_ALLOWED. */
  maxHeaderCount: number
  /** 0 = no limit. A declared Content-Length over it is refused before anything is forwarded. */
  maxBodyBytes?: number
  /** Inbound requests come from other machines: stricter (no underscores in names). */
  inbound: boolean
}

// RFC 9110 §5.6.2 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const DECIMAL = /^[0-9]+$/
// Fields that must appear at most once: two values would let two parsers disagree. Node keeps the first
// Content-Type (what a lens parses the body as) and joins the MCP fields with ", " (security.md §2).
const SINGLE = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'authorization',
  'content-type',
  'mcp-session-id',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
])

function invalid(reason: string, message: string): SvidecarError {
  return new SvidecarError('SVD_REQUEST_INVALID', message, { reason })
}

/**
 * Hop-by-hop and Via fields a request may carry on top of maxHeaderCount. They are not counted, and neither are
 * Host and Content-Length: a proxy rewrites exactly those (undici adds Connection, and Content-Length or
 * Transfer-Encoding, to a streamed body; each sidecar appends a Via entry), so a request that passes one sidecar with N counted fields reaches
 * the next one with N, not N + what the first proxy added.
 */
const UNCOUNTED_FIELDS_ALLOWED = 16
const UNCOUNTED = new Set(['host', 'content-length'])

/** server.maxHeadersCount: Node's parser refuses more, so it must allow every field a valid request may carry. */
export function parserHeaderLimit(maxHeaderCount: number): number {
  return maxHeaderCount + UNCOUNTED.size + UNCOUNTED_FIELDS_ALLOWED + 1
}

function tooMany(count: number, limit: number): SvidecarError {
  return new SvidecarError(
    'SVD_REQUEST_HEADERS_TOO_LARGE',
    `the request has ${count} header fields; the limit is ${limit}`,
    { reason: 'TOO_MANY_HEADERS' },
  )
}

export function checkRequest(
  req: { rawHeaders: readonly string[]; httpVersion?: string },
  options: GuardOptions,
): SvidecarError | undefined {
  // Node's parser takes "HTTP/2.0" in a request line (no HTTP/2 request has one: RFC 9113 §3.4); this listener
  // speaks HTTP/1.x only (RFC 9112 §2.3).
  if (req.httpVersion !== undefined && req.httpVersion !== '1.1' && req.httpVersion !== '1.0')
    return invalid('UNSUPPORTED_HTTP_VERSION', `HTTP/${req.httpVersion} is not spoken here; use HTTP/1.1`)
  const raw = req.rawHeaders
  const total = raw.length / 2
  // Node's parser refuses this already; the guard must not depend on it.
  if (total > options.maxHeaderCount + UNCOUNTED.size + UNCOUNTED_FIELDS_ALLOWED)
    return tooMany(total, options.maxHeaderCount)
  let counted = 0
  let hopByHop = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    // Via grows by one at each proxy (RFC 9110 §7.6.3): counted with the hop-by-hop fields, which are bounded.
    if (isHopByHop(name) || lowerName(name) === 'via') hopByHop++
    else if (!UNCOUNTED.has(lowerName(name))) counted++
  }
  if (counted > options.maxHeaderCount) return tooMany(counted, options.maxHeaderCount)
  if (hopByHop > UNCOUNTED_FIELDS_ALLOWED) return tooMany(total, options.maxHeaderCount)
  let host: string | undefined
  let seen: Set<string> | undefined
  let contentLength: string | undefined
  let transferEncoding: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (!TOKEN.test(name))
      return invalid('BAD_HEADER_NAME', 'a header name has characters outside the HTTP token set')
    if (options.inbound && name.includes('_')) {
      // Some servers and CGI-style frameworks treat "_" as "-": a forged X_Spiffe_Id could pass as the real header.
      return invalid(
        'UNDERSCORE_IN_HEADER_NAME',
        `header "${name}" has an underscore, which inbound listeners refuse`,
      )
    }
    const lower = lowerName(name)
    if (!SINGLE.has(lower)) continue
    seen ??= new Set()
    if (seen.has(lower))
      return invalid(
        `DUPLICATE_${lower.toUpperCase().replaceAll('-', '_')}`,
        `the request has more than one ${lower} header`,
      )
    seen.add(lower)
    if (lower === 'host') host = (raw[i + 1] as string).trim()
    else if (lower === 'content-length') contentLength = (raw[i + 1] as string).trim()
    else if (lower === 'transfer-encoding') transferEncoding = (raw[i + 1] as string).trim().toLowerCase()
  }
  // HTTP/1.1 requires Host (RFC 9112 §3.2); we answer that ourselves so the refusal has our format.
  if (!seen?.has('host') && req.httpVersion !== '1.0')
    return invalid('MISSING_HOST', 'the request has no Host header')
  if (host !== undefined && !validHost(host))
    return invalid('BAD_HOST', 'the Host header is not a host name or address with an optional port')
  if (contentLength !== undefined && transferEncoding !== undefined) {
    return invalid(
      'CONTENT_LENGTH_WITH_TRANSFER_ENCODING',
      'the request has both Content-Length and Transfer-Encoding',
    )
  }
  if (contentLength !== undefined && !DECIMAL.test(contentLength)) {
    return invalid('BAD_CONTENT_LENGTH', 'Content-Length is not a decimal number')
  }
  const maxBody = options.maxBodyBytes ?? 0
  if (contentLength !== undefined && maxBody > 0 && Number(contentLength) > maxBody) {
    return new SvidecarError(
      'SVD_REQUEST_BODY_TOO_LARGE',
      `the request body is ${contentLength} bytes; the limit is ${maxBody}`,
      { reason: 'CONTENT_LENGTH_OVER_LIMIT' },
    )
  }
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing (1.0 has no chunked coding, so
  // a 1.0 hop would read the chunks as the body, or the body as the next request).
  if (transferEncoding !== undefined && req.httpVersion === '1.0') {
    return invalid('TRANSFER_ENCODING_IN_HTTP_1_0', 'an HTTP/1.0 request cannot carry Transfer-Encoding')
  }
  if (transferEncoding !== undefined && transferEncoding !== 'chunked') {
    return invalid('BAD_TRANSFER_ENCODING', 'only "Transfer-Encoding: chunked" is accepted')
  }
  return undefined
}
