import { SvidecarError } from '../errors/index.ts'

/** Maps what undici or a socket reports to the sidecar's error table; the upstream's own words stay out of messages. */
export function upstreamError(err: unknown, upstream: string): SvidecarError {
  if (err instanceof SvidecarError) return err
  const code = (err as { code?: string } | null)?.code ?? ''
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new SvidecarError(
        'SVD_UPSTREAM_CONNECT_TIMEOUT',
        `upstream ${upstream} did not accept a connection in time`,
        {
          reason: code,
        },
      )
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new SvidecarError('SVD_UPSTREAM_TIMEOUT', `upstream ${upstream} did not answer in time`, {
        reason: code,
      })
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new SvidecarError('SVD_UPSTREAM_UNAVAILABLE', `upstream ${upstream} is unreachable (${code})`, {
        reason: code,
      })
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
      return new SvidecarError('SVD_UPSTREAM_RESET', `upstream ${upstream} closed the connection`, {
        reason: code,
      })
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_INFO':
      return new SvidecarError('SVD_UPSTREAM_PROTOCOL', `upstream ${upstream} sent a malformed response`, {
        reason: code,
      })
    default:
      if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.includes('CERT')) {
        return new SvidecarError(
          'SVD_UPSTREAM_TLS_FAILED',
          `TLS with upstream ${upstream} failed (${code})`,
          {
            reason: code,
          },
        )
      }
      return new SvidecarError('SVD_UPSTREAM_UNAVAILABLE', `upstream ${upstream} failed`, {
        reason: code || 'UNKNOWN',
      })
  }
}
