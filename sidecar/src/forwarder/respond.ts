/**
 * The one place a sidecar-made error becomes a response: JSON
 * `{"error":{"code","message"}}` with `x-svidecar-error: <code>`, so clients
 * and dashboards can tell the proxy's refusals from the upstream's answers.
 * An unexpected error becomes SVD_INTERNAL with a fixed message: its own
 * text or stack might carry a secret. Calls an LLM lens recognised get the
 * provider's own error shape instead (the SDKs parse only that one), with
 * the code where each SDK exposes it: OpenAI's `error.code`, Anthropic's
 * `error.details.error_code`.
 */
import type { ServerResponse } from 'node:http'
import { SvidecarError, type SvidecarErrorCode } from '../errors/index.ts'

export const ERROR_HEADER = 'x-svidecar-error'

export interface ErrorResponse {
  status: number
  headers: Record<string, string>
  body: string
}

// After these the connection's byte stream may be out of step with the parser: close it.
const CLOSE_AFTER = new Set([400, 408, 413, 431])

// Refusals an immediate retry cannot change. The openai and Anthropic SDKs retry every 429 on their own unless
// told otherwise (`x-should-retry`), sleeping `retry-after` first: up to a minute each time, and for the
// Anthropic SDK any length (hours, on a day's budget). A used-up budget is a quota, not congestion: the caller
// gets the error at once and reads `retry-after` from it.
const NO_RETRY: ReadonlySet<SvidecarErrorCode> = new Set<SvidecarErrorCode>(['SVD_BUDGET_EXHAUSTED'])

/** The error shape a refusal is written in: the sidecar's own, or an LLM provider's. */
export type ErrorStyle = 'svidecar' | 'openai' | 'anthropic'

export function errorBody(err: unknown, style: ErrorStyle = 'svidecar'): ErrorResponse {
  const e = err instanceof SvidecarError ? err : new SvidecarError('SVD_INTERNAL', 'internal error')
  const body = JSON.stringify(shaped(e, style))
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    [ERROR_HEADER]: e.code,
  }
  if (CLOSE_AFTER.has(e.status)) headers.connection = 'close'
  if (e.retryAfter !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(e.retryAfter)))
  else if (e.status === 503) headers['retry-after'] = '1'
  if (NO_RETRY.has(e.code)) headers['x-should-retry'] = 'false'
  return { status: e.status, headers, body }
}

function shaped(e: SvidecarError, style: ErrorStyle): unknown {
  switch (style) {
    case 'openai':
      return { error: { message: e.message, type: openAiType(e.status), param: null, code: e.code } }
    case 'anthropic':
      return {
        type: 'error',
        error: { type: anthropicType(e.status), message: e.message, details: { error_code: e.code } },
      }
    default:
      return { error: { code: e.code, message: e.message } }
  }
}

function openAiType(status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 429) return 'rate_limit_error'
  return status >= 500 ? 'server_error' : 'invalid_request_error'
}

// Anthropic's documented error types by status.
function anthropicType(status: number): string {
  switch (status) {
    case 401:
      return 'authentication_error'
    case 403:
      return 'permission_error'
    case 404:
      return 'not_found_error'
    case 413:
      return 'request_too_large'
    case 429:
      return 'rate_limit_error'
    case 503:
    case 529:
      return 'overloaded_error'
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error'
  }
}

export function sendError(res: ServerResponse, err: unknown, style: ErrorStyle = 'svidecar'): void {
  if (res.headersSent || res.destroyed) {
    res.destroy()
    return
  }
  const { status, headers, body } = errorBody(err, style)
  headers['content-length'] = String(Buffer.byteLength(body))
  res.writeHead(status, headers)
  res.end(body)
}

/** A complete answer a stage composed itself (respond.ts only writes it). */
export interface Reply {
  status: number
  headers: Record<string, string>
  /** Empty for a bodiless answer (202). */
  body: string
}

export function sendReply(res: ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) {
    res.destroy()
    return
  }
  const headers = { ...reply.headers, 'content-length': String(Buffer.byteLength(reply.body)) }
  res.writeHead(reply.status, headers)
  res.end(reply.body)
}
