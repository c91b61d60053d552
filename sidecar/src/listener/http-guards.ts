/**
 * Refuses requests that two HTTP implementations could read differently
 * (request smuggling, RFC 9112 §6.3 and §11.2) before a byte goes upstream.
 * Node's parser already refuses several of these; this check runs on the
 * raw header list anyway, because the proxy's safety must not rest on one
 * parser version's choices.
 */
import { SvidecarError } from '../errors/index.ts'

export interface GuardOptions {
  maxHeaderCount: number
  /** Inbound requests come from other machines: stricter (no underscores in names). */
  inbound: boolean
}

// RFC 9110 §5.6.2 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const DECIMAL = /^[0-9]+$/
// Fields that must appear at most once: two values would let two parsers disagree.
const SINGLE = new Set(['host', 'content-length', 'transfer-encoding', 'authorization'])

function invalid(reason: string, message: string): SvidecarError {
  return new SvidecarError('SVD_REQUEST_INVALID', message, { reason })
}

export function checkRequest(
  req: { rawHeaders: readonly string[]; httpVersion?: string },
  options: GuardOptions,
): SvidecarError | undefined {
  const raw = req.rawHeaders
  const count = raw.length / 2
  if (count > options.maxHeaderCount) {
    return new SvidecarError(
      'SVD_REQUEST_HEADERS_TOO_LARGE',
      `the request has ${count} header fields; the limit is ${options.maxHeaderCount}`,
      { reason: 'TOO_MANY_HEADERS' },
    )
  }
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
    const lower = name.toLowerCase()
    if (!SINGLE.has(lower)) continue
    seen ??= new Set()
    if (seen.has(lower))
      return invalid(
        `DUPLICATE_${lower.toUpperCase().replace('-', '_')}`,
        `the request has more than one ${lower} header`,
      )
    seen.add(lower)
    if (lower === 'content-length') contentLength = (raw[i + 1] as string).trim()
    else if (lower === 'transfer-encoding') transferEncoding = (raw[i + 1] as string).trim().toLowerCase()
  }
  // HTTP/1.1 requires Host (RFC 9112 §3.2); we answer that ourselves so the refusal has our format.
  if (!seen?.has('host') && req.httpVersion !== '1.0')
    return invalid('MISSING_HOST', 'the request has no Host header')
  if (contentLength !== undefined && transferEncoding !== undefined) {
    return invalid(
      'CONTENT_LENGTH_WITH_TRANSFER_ENCODING',
      'the request has both Content-Length and Transfer-Encoding',
    )
  }
  if (contentLength !== undefined && !DECIMAL.test(contentLength)) {
    return invalid('BAD_CONTENT_LENGTH', 'Content-Length is not a decimal number')
  }
  if (transferEncoding !== undefined && transferEncoding !== 'chunked') {
    return invalid('BAD_TRANSFER_ENCODING', 'only "Transfer-Encoding: chunked" is accepted')
  }
  return undefined
}
