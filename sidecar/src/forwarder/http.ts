/**
 * Streams one HTTP exchange to an upstream and back with undici's dispatch
 * API: no body is buffered, back-pressure holds in both directions (the
 * client's socket pauses undici's reads; undici's writes pace the client),
 * and each SSE event is written the moment it arrives. A client that goes
 * away aborts the upstream request; an upstream that resets mid-response
 * resets the client, so neither side mistakes a cut stream for a whole one.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { SvidecarError } from '../errors/index.ts'
import { responseHeaders } from './headers.ts'
import { sendError } from './respond.ts'
import { upstreamError } from './upstream-errors.ts'
import type { Upstream } from './upstreams.ts'

export interface ForwardOptions {
  /** The header list to send, already sanitised (flat name, value pairs). */
  headers: string[]
  /** Called once when the exchange ends, however it ends; with the error when the sidecar ended it. */
  onEnd?: EndCallback
  /** The body to send instead of `req` itself (a guarded copy, see body-guard.ts). */
  body?: Readable
}

export type EndCallback = (status: number, code: string | undefined, err?: SvidecarError) => void

export function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true
  const length = req.headers['content-length']
  return length !== undefined && length !== '0'
}

export function forwardHttp(
  req: IncomingMessage,
  res: ServerResponse,
  upstream: Upstream,
  options: ForwardOptions,
): void {
  const handler = new ProxyHandler(req, res, upstream.name, options.onEnd)
  upstream.pool.dispatch(
    {
      origin: upstream.url.origin,
      path: upstream.basePath + (req.url ?? '/'),
      method: req.method as Dispatcher.HttpMethod,
      headers: options.headers,
      body: hasBody(req) ? (options.body ?? req) : null,
      // Retrying is the client's call: the proxy cannot know whether a request is safe to repeat.
      idempotent: false,
      blocking: false,
    },
    handler,
  )
}

class ProxyHandler implements Dispatcher.DispatchHandler {
  readonly #req: IncomingMessage
  readonly #res: ServerResponse
  readonly #upstream: string
  readonly #onEnd: EndCallback | undefined
  #controller: Dispatcher.DispatchController | undefined
  #done = false
  #headPending = false

  constructor(req: IncomingMessage, res: ServerResponse, upstream: string, onEnd?: EndCallback) {
    this.#req = req
    this.#res = res
    this.#upstream = upstream
    this.#onEnd = onEnd
    // 'close' before the response finished: the client went away. Tell the upstream.
    res.on('close', () => {
      if (this.#done) return
      this.#finish(499, 'CLIENT_ABORTED')
      this.#controller?.abort(
        new SvidecarError('SVD_REQUEST_INVALID', 'client closed the connection', {
          reason: 'CLIENT_ABORTED',
        }),
      )
    })
    res.on('drain', () => this.#controller?.resume())
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#res.destroyed) controller.abort(new Error('client gone'))
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    // 1xx interim responses (100 Continue, 103 Early Hints) are handled by Node on each side; wait for the final one.
    if (statusCode < 200) return
    const raw = controller.rawHeaders
    const flat = Array.isArray(raw)
      ? raw.map((h) => (typeof h === 'string' ? h : h.toString('latin1')))
      : flatten(headers)
    this.#res.writeHead(statusCode, statusMessage ?? '', responseHeaders(flat))
    // The head goes out with the first body chunk, in one write, when that chunk is already here; when it is not
    // (an SSE stream, a slow upstream), the head goes out on its own before the loop waits for more.
    this.#headPending = true
    setImmediate(() => {
      if (!this.#headPending) return
      this.#headPending = false
      if (!this.#res.destroyed) this.#res.flushHeaders()
    })
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#headPending = false
    if (!this.#res.write(chunk)) controller.pause()
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    const pairs = flatten(trailers)
    if (pairs.length > 0) {
      const list: [string, string][] = []
      for (let i = 0; i + 1 < pairs.length; i += 2) list.push([pairs[i] as string, pairs[i + 1] as string])
      this.#res.addTrailers(list)
    }
    this.#headPending = false
    this.#res.end()
    this.#finish(this.#res.statusCode, undefined)
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#done) return
    const e = upstreamError(err, this.#upstream)
    if (!this.#res.headersSent) {
      sendError(this.#res, e)
      // The request body may still be arriving; it has nowhere to go.
      if (!this.#req.complete) this.#req.resume()
    } else {
      // Mid-response: a truncated body must not look complete. Reset the client's connection.
      this.#res.destroy(e)
    }
    this.#finish(e.status, e.code, e)
  }

  #finish(status: number, code: string | undefined, err?: SvidecarError): void {
    if (this.#done) return
    this.#done = true
    this.#onEnd?.(status, code, err)
  }
}

function flatten(headers: IncomingHttpHeaders | null | undefined): string[] {
  const out: string[] = []
  if (!headers) return out
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    if (Array.isArray(value)) for (const v of value) out.push(name, v)
    else out.push(name, String(value))
  }
  return out
}
