/**
 * The one place a sidecar-made error becomes a response: JSON
 * `{"error":{"code","message"}}` with `x-svidecar-error: <code>`, so clients
 * and dashboards can tell the proxy's refusals from the upstream's answers.
 * An unexpected error becomes SVD_INTERNAL with a fixed message: its own
 * text or stack might carry a secret.
 */
import type { ServerResponse } from 'node:http'
import { SvidecarError } from '../errors/index.ts'

export const ERROR_HEADER = 'x-svidecar-error'

export interface ErrorResponse {
  status: number
  headers: Record<string, string>
  body: string
}

// After these the connection's byte stream may be out of step with the parser: close it.
const CLOSE_AFTER = new Set([400, 408, 413, 431])

export function errorBody(err: unknown): ErrorResponse {
  const e = err instanceof SvidecarError ? err : new SvidecarError('SVD_INTERNAL', 'internal error')
  const body = JSON.stringify({ error: { code: e.code, message: e.message } })
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    [ERROR_HEADER]: e.code,
  }
  if (CLOSE_AFTER.has(e.status)) headers.connection = 'close'
  if (e.status === 503) headers['retry-after'] = '1'
  return { status: e.status, headers, body }
}

export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent || res.destroyed) {
    res.destroy()
    return
  }
  const { status, headers, body } = errorBody(err)
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
