/**
 * The one mapping from what a socket, TLS or undici reports about an
 * upstream to the sidecar's error table. The TLS connector and the
 * forwarders all call it, so one failure has one code wherever it happens.
 *
 * The split that matters to clients is retryable or not: only "nothing was
 * sent, the upstream was not there" (refused, unroutable, no such host) is a
 * 503 with retry-after. An upstream that was there and broke the exchange
 * (reset, bad TLS, a malformed response) is a 502: retrying a broken
 * upstream does not help. A reset is a reset whether it comes during the
 * TLS handshake (often a peer refusing our certificate) or mid-response.
 * The upstream's own words (error messages, response bytes) never reach a
 * message; the original error stays as `cause` for the log.
 */
import { errors as undiciErrors } from 'undici'
import type { SvidecarErrorCode } from './codes.ts'
import { SvidecarError } from './svidecar-error.ts'

/** Where the failure happened: uncoded errors during a handshake are that handshake's failure. */
export type UpstreamPhase = 'exchange' | 'tls-handshake' | 'websocket-handshake'

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_NONAME',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
])

const RESET = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ENOTCONN', 'UND_ERR_SOCKET', 'UND_ERR_INFO'])

// The request side failed while undici streamed it: the client stopped sending or sent less than it announced.
const CLIENT = new Set([
  'UND_ERR_ABORTED',
  'UND_ERR_ABORT',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'ERR_STREAM_PREMATURE_CLOSE',
])

const PROTOCOL = new Set([
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  'UND_ERR_HEADERS_OVERFLOW',
  // Node refused to write what the upstream sent (a status or header the client side cannot carry).
  'ERR_INVALID_CHAR',
  'ERR_HTTP_INVALID_STATUS_CODE',
  'ERR_INVALID_HTTP_TOKEN',
  'ERR_HTTP_INVALID_HEADER_VALUE',
])

// The sidecar asked undici for something it refuses: a bug on our side, not the upstream's.
const OURS = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_INVALID_RETURN_VALUE'])

// undici reports these protocol violations as UND_ERR_SOCKET, the same code as a peer reset; only the
// message tells them apart (pinned against the installed undici by sidecar/test/upstream-responses.test.ts).
const SOCKET_PROTOCOL_MESSAGES: Record<string, string> = {
  'bad response': 'UNEXPECTED_RESPONSE',
  'bad upgrade': 'UNSOLICITED_UPGRADE',
}

export function upstreamError(
  err: unknown,
  upstream: string,
  phase: UpstreamPhase = 'exchange',
): SvidecarError {
  if (err instanceof SvidecarError) return err
  const foreign = err as { code?: unknown; message?: unknown } | null
  const code = typeof foreign?.code === 'string' ? foreign.code : ''
  const make = (c: SvidecarErrorCode, message: string, reason: string) =>
    new SvidecarError(c, message, { reason, cause: err })

  if (err instanceof undiciErrors.HTTPParserError || code.startsWith('HPE_')) {
    return make(
      'SVD_UPSTREAM_PROTOCOL',
      `upstream ${upstream} sent a malformed response`,
      code || 'HPE_INVALID',
    )
  }
  if (code === 'UND_ERR_SOCKET' && typeof foreign?.message === 'string') {
    const reason = SOCKET_PROTOCOL_MESSAGES[foreign.message]
    if (reason !== undefined) {
      return make(
        'SVD_UPSTREAM_PROTOCOL',
        `upstream ${upstream} sent a response that was not asked for`,
        reason,
      )
    }
  }
  if (
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'ETIMEDOUT' ||
    code === 'ERR_SOCKET_CONNECTION_TIMEOUT'
  ) {
    return make(
      'SVD_UPSTREAM_CONNECT_TIMEOUT',
      `upstream ${upstream} did not accept a connection in time`,
      code,
    )
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return make('SVD_UPSTREAM_TIMEOUT', `upstream ${upstream} did not answer in time`, code)
  }
  if (UNREACHABLE.has(code)) {
    return make('SVD_UPSTREAM_UNAVAILABLE', `upstream ${upstream} is unreachable (${code})`, code)
  }
  if (code.startsWith('ERR_HTTP2_INVALID')) {
    return make('SVD_UPSTREAM_PROTOCOL', `upstream ${upstream} sent a malformed HTTP/2 response`, code)
  }
  if (RESET.has(code) || code.startsWith('ERR_HTTP2')) {
    return make('SVD_UPSTREAM_RESET', `upstream ${upstream} closed the connection`, code)
  }
  if (PROTOCOL.has(code)) {
    return make('SVD_UPSTREAM_PROTOCOL', `upstream ${upstream} sent a response that cannot be relayed`, code)
  }
  if (code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED') {
    return make('SVD_SHUTTING_DOWN', `the connection pool for upstream ${upstream} is closing`, code)
  }
  if (
    code.startsWith('ERR_TLS') ||
    code.startsWith('ERR_SSL') ||
    code.startsWith('ERR_OSSL') ||
    code.includes('CERT') ||
    code === 'EPROTO'
  ) {
    return make('SVD_UPSTREAM_TLS_FAILED', `TLS with upstream ${upstream} failed (${code})`, code)
  }
  if (code === '' && phase === 'tls-handshake') {
    return make(
      'SVD_UPSTREAM_TLS_FAILED',
      `TLS handshake with upstream ${upstream} failed`,
      'TLS_HANDSHAKE_FAILED',
    )
  }
  if (code === '' && phase === 'websocket-handshake') {
    return make(
      'SVD_UPSTREAM_PROTOCOL',
      `upstream ${upstream} failed the WebSocket handshake`,
      'WEBSOCKET_HANDSHAKE_FAILED',
    )
  }
  if (CLIENT.has(code)) {
    return make('SVD_REQUEST_INVALID', 'the client stopped sending the request body', code)
  }
  if (OURS.has(code)) return make('SVD_INTERNAL', 'internal error', code)
  // Unknown is a gap in this table: never a 503 that tells clients to retry, never the foreign text.
  return make('SVD_INTERNAL', 'internal error', code || 'UNKNOWN')
}
