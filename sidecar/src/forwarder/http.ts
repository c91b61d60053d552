/**
 * Streams one HTTP exchange to an upstream and back with undici's dispatch
 * API: no body is buffered, back-pressure holds in both directions (the
 * client's socket pauses undici's reads; undici's writes pace the client),
 * and each SSE event is written the moment it arrives. A client that goes
 * away aborts the upstream request; an upstream that resets mid-response
 * resets the client, so neither side mistakes a cut stream for a whole one.
 */
import { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { SvidecarError } from '../errors/index.ts'
import { upstreamError } from '../errors/upstream-errors.ts'
import { publishUpstreamFailed } from '../observe/events.ts'
import { awaitsContinue, sendContinue } from './expect.ts'
import { responseHeaders, viaEntry } from './headers.ts'
import { type ErrorStyle, sendError } from './respond.ts'
import type { Upstream } from './upstreams.ts'

// undici speaks HTTP/1.1 to every upstream: the version this hop receives each response in.
const VIA_HTTP_1_1 = viaEntry('1.1')

export interface ForwardOptions {
  /** The header list to send, already sanitised (flat name, value pairs). */
  headers: string[]
  /** Called once when the exchange ends, however it ends; with the error when the sidecar ended it. */
  onEnd?: EndCallback
  /** The body to send instead of `req` itself (a guarded copy, see body-guard.ts, or one a stage read whole). */
  body?: Readable | Buffer
  /** Response wrappers of the pipeline's stages, asked once the response head is known. */
  wrap?: (head: ResponseHead) => ResponseWrapper[]
  /** The shape of the sidecar's own error responses (an LLM provider's, for an LLM call). */
  errorStyle?: ErrorStyle
}

export interface ResponseHead {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  /**
   * Ends the response early, now or later (from a timer or a promise): writes `last` (a terminal frame the
   * client's parser understands) straight to the client, ends the response cleanly, aborts the upstream request
   * and reports the exchange as ended by `err`. Nothing the upstream sends afterwards reaches the client.
   */
  readonly cut?: (last: Buffer, err: SvidecarError) => void
}

/**
 * Sees a response on its way to the client (lenses that count tokens or filter lists). `data` returns the
 * chunk to write, possibly rewritten; it must not hold a chunk it does not need. A wrapper that may change
 * the body's length removes `content-length` through `headers`; what `end` returns is written last. A
 * promise (a decision service asked about a list) holds the response until it settles, in order.
 */
export interface ResponseWrapper {
  /** Header changes, applied before the response head goes out. */
  readonly headers?: { readonly set?: Readonly<Record<string, string>>; readonly remove?: readonly string[] }
  data?(chunk: Buffer): Buffer | Promise<Buffer>
  /** Called once when the body is over, also after a cut (whatever it returns then is dropped). */
  end?(): Buffer | undefined | Promise<Buffer | undefined>
  /**
   * Called once instead of `end` when the response stops without its body being over: the client went away or
   * the upstream failed (state a wrapper keeps for the stream's life is let go).
   */
  closed?(): void
  /**
   * Receives a way to write to the client between chunks, in order with them (an answer the sidecar gives
   * on a long-lived stream, such as a denial on an MCP HTTP+SSE stream). Writes after the end are dropped.
   */
  attach?(push: (chunk: Buffer) => void): void
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
  // req.url is origin-form here: the listener normalised it (listener/request-target.ts).
  const handler = new ProxyHandler(req, res, upstream.name, options.onEnd, options.wrap, options.errorStyle)
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
      // undici takes a request's TLS server name from its Host when none is given, and closes a kept-alive
      // connection whose name differs; a peer sidecar's Host is the app's, so one name per upstream keeps the
      // pool's connections (the SNI itself is ClientTls's: the upstream URL's host name).
      ...(upstream.kind === 'spiffe' ? { servername: upstream.url.hostname } : {}),
    },
    handler,
  )
}

/**
 * RFC 9112 §4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ). `invalid`: a control character makes the
 * status line malformed. `obs-text`: bytes above 0x7e, which undici has already decoded as UTF-8, so their
 * original bytes are gone.
 */
function reasonPhraseKind(reason: string): 'visible' | 'obs-text' | 'invalid' {
  let kind: 'visible' | 'obs-text' = 'visible'
  for (let i = 0; i < reason.length; i++) {
    const c = reason.charCodeAt(i)
    if (c === 0x09 || (c >= 0x20 && c <= 0x7e)) continue
    if (c < 0x20 || c === 0x7f) return 'invalid'
    kind = 'obs-text'
  }
  return kind
}

class ProxyHandler implements Dispatcher.DispatchHandler {
  readonly #req: IncomingMessage
  readonly #res: ServerResponse
  readonly #upstream: string
  readonly #onEnd: EndCallback | undefined
  readonly #wrap: ((head: ResponseHead) => ResponseWrapper[]) | undefined
  #wrappers: ResponseWrapper[] | undefined
  #controller: Dispatcher.DispatchController | undefined
  #done = false
  /** The wrappers were told the body is over (`end`), so `closed` is not for them. */
  #wrappersEnded = false
  #headPending = false
  /** The last chunk a wrapper still works on (a promise); undefined while chunks pass straight through. */
  #held: Promise<void> | undefined
  readonly #errorStyle: ErrorStyle | undefined

  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    upstream: string,
    onEnd?: EndCallback,
    wrap?: (head: ResponseHead) => ResponseWrapper[],
    errorStyle?: ErrorStyle,
  ) {
    this.#errorStyle = errorStyle
    this.#req = req
    this.#res = res
    this.#upstream = upstream
    this.#onEnd = onEnd
    this.#wrap = wrap
    // 'close' before the response finished: the client went away. Tell the upstream.
    res.on('close', () => {
      if (this.#done) return
      this.#finish(499, 'CLIENT_ABORTED')
      this.#controller?.abort(clientGone())
    })
    res.on('drain', () => this.#controller?.resume())
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#res.destroyed) {
      controller.abort(clientGone())
      return
    }
    // undici calls this once the upstream connection is up and the request head is about to go out: the moment
    // the sidecar can take the body (forwarder/expect.ts).
    if (awaitsContinue(this.#req)) sendContinue(this.#req, this.#res)
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    if (this.#done) return
    if (statusCode < 100 || statusCode > 599) {
      // RFC 9110 §15: a status code is 100..599; a client would have to guess what another means. (undici passes
      // one below 100 on as if it were interim, then fails an assertion when the message ends.)
      this.#fail(
        controller,
        this.#protocolError(`status ${statusCode} is outside 100..599`, 'INVALID_STATUS'),
      )
      return
    }
    // 1xx interim responses: 103 Early Hints is relayed (RFC 9110 §15.2: a proxy forwards 1xx); 102, which RFC 9110
    // no longer defines, is passed over. A 100 never gets here: undici would take it for a broken connection, so
    // unsolicited-continue.ts removes it before undici's parser.
    if (statusCode < 200) {
      if (statusCode === 103) this.#earlyHints(headers)
      return
    }
    if (!onlyChunked(headers['transfer-encoding'])) {
      // RFC 9112 §6.1, §7: undici removes the chunked coding only; any other coding (or chunked twice) would reach
      // the client with Transfer-Encoding dropped as hop-by-hop, its bytes no longer saying what they are.
      this.#fail(
        controller,
        this.#protocolError('a transfer coding other than chunked', 'UNSUPPORTED_TRANSFER_CODING'),
      )
      return
    }
    const reason = statusMessage ?? ''
    const reasonKind = reasonPhraseKind(reason)
    if (reasonKind === 'invalid') {
      this.#fail(
        controller,
        this.#protocolError('the reason phrase has a control character', 'INVALID_REASON_PHRASE'),
      )
      return
    }
    const raw = controller.rawHeaders
    let flat = Array.isArray(raw)
      ? raw.map((h) => (typeof h === 'string' ? h : h.toString('latin1')))
      : flatten(headers)
    // RFC 9110 §8.6: a 204 never carries Content-Length. A client that honours one anyway would read that many
    // bytes of the next response on the connection as this one's body.
    if (statusCode === 204) flat = withoutField(flat, 'content-length')
    if (this.#wrap !== undefined) {
      const wrappers = this.#wrap({
        status: statusCode,
        headers,
        cut: (last, err) => this.#cut(controller, last, err),
      })
      if (wrappers.length > 0) {
        this.#wrappers = wrappers
        flat = editHeaders(flat, wrappers)
        for (const w of wrappers) w.attach?.((chunk) => this.#push(controller, chunk))
      }
    }
    const relayed = responseHeaders(flat)
    relayed.push('via', VIA_HTTP_1_1)
    try {
      // A reason with obs-text reaches us already decoded as UTF-8 (undici), so its bytes are lost: the standard
      // phrase replaces it. The reason phrase carries no meaning (RFC 9112 §4).
      this.#res.writeHead(
        statusCode,
        reasonKind === 'visible' && reason !== '' ? reason : (STATUS_CODES[statusCode] ?? ''),
        relayed,
      )
    } catch (err) {
      // Node refused what the upstream sent (a header value or name it cannot write): unrelayable.
      this.#fail(controller, upstreamError(err, this.#upstream))
      return
    }
    // The head goes out with the first body chunk, in one write, when that chunk is already here; when it is not
    // (an SSE stream, a slow upstream), the head goes out on its own before the loop waits for more.
    this.#headPending = true
    setImmediate(flushPendingHead, this)
  }

  #earlyHints(headers: IncomingHttpHeaders): void {
    const req = this.#req
    // RFC 9110 §15.2: never to an HTTP/1.0 client; never once the final response has begun.
    if (
      req.httpVersionMajor !== 1 ||
      req.httpVersionMinor < 1 ||
      this.#res.headersSent ||
      this.#res.destroyed
    )
      return
    const flat = responseHeaders(flatten(headers))
    const hints: Record<string, string | string[]> = {}
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const name = (flat[i] as string).toLowerCase()
      // RFC 9110 §8.6: never on a 1xx; a client that honoured one would take the final response's bytes as a body.
      if (name === 'content-length') continue
      const value = flat[i + 1] as string
      const had = hints[name]
      hints[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value]
    }
    try {
      this.#res.writeEarlyHints(hints)
    } catch {
      // Node writes only Link values it can validate; a hint is advice, so one it refuses is dropped.
    }
  }

  /** The next turn of the loop after the head: no body chunk came with it, so the head goes out alone. */
  flushHead(): void {
    if (!this.#headPending) return
    this.#headPending = false
    if (!this.#res.destroyed) this.#res.flushHeaders()
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#done) return
    this.#headPending = false
    if (this.#wrappers === undefined) {
      if (!this.#res.write(chunk)) controller.pause()
      return
    }
    const wrappers = this.#wrappers
    if (this.#held === undefined) {
      const out = throughWrappers(chunk, wrappers, 0)
      if (!(out instanceof Promise)) {
        // A wrapper cut the response while it looked at this chunk.
        if (this.#done) return
        if (out.length > 0 && !this.#res.write(out)) controller.pause()
        return
      }
      this.#hold(controller, out)
      return
    }
    this.#hold(
      controller,
      this.#held.then(() => throughWrappers(chunk, wrappers, 0)),
    )
  }

  #push(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#done || this.#res.destroyed) return
    this.#headPending = false
    if (this.#held === undefined) {
      if (!this.#res.write(chunk)) controller.pause()
      return
    }
    this.#hold(
      controller,
      this.#held.then(() => chunk),
    )
  }

  /** A wrapper answered with a promise: later chunks and the end wait behind it, in order. */
  #hold(controller: Dispatcher.DispatchController, out: Promise<Buffer | undefined>): void {
    controller.pause()
    const held: Promise<void> = out.then(
      (buf) => {
        if (this.#done) return
        const ok = buf === undefined || buf.length === 0 || this.#res.write(buf)
        if (this.#held === held) {
          this.#held = undefined
          if (ok) controller.resume()
        }
      },
      (err: unknown) => {
        if (this.#held === held) this.#held = undefined
        this.#fail(controller, upstreamError(err, this.#upstream))
      },
    )
    this.#held = held
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.#done) return
    if (this.#wrappers !== undefined) {
      const wrappers = this.#wrappers
      this.#wrappersEnded = true
      const tail =
        this.#held === undefined ? endWrappers(wrappers, 0) : this.#held.then(() => endWrappers(wrappers, 0))
      if (tail instanceof Promise) {
        tail.then(
          (buf) => this.#end(controller, trailers, buf),
          (err: unknown) => this.#fail(controller, upstreamError(err, this.#upstream)),
        )
        return
      }
      this.#end(controller, trailers, tail)
      return
    }
    this.#end(controller, trailers, undefined)
  }

  #end(
    controller: Dispatcher.DispatchController,
    trailers: IncomingHttpHeaders,
    tail: Buffer | undefined,
  ): void {
    if (this.#done) return
    if (tail !== undefined && tail.length > 0) this.#res.write(tail)
    // Trailer fields get the head's treatment: hop-by-hop ones dropped, the sidecar's refusal marker renamed.
    const pairs = responseHeaders(flatten(trailers))
    if (pairs.length > 0) {
      const list: [string, string][] = []
      for (let i = 0; i + 1 < pairs.length; i += 2) list.push([pairs[i] as string, pairs[i + 1] as string])
      try {
        this.#res.addTrailers(list)
      } catch (err) {
        this.#fail(controller, upstreamError(err, this.#upstream))
        return
      }
    }
    this.#headPending = false
    this.#res.end()
    this.#finish(this.#res.statusCode, undefined)
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#done) return
    this.#reply(upstreamError(err, this.#upstream))
  }

  #protocolError(what: string, reason: string): SvidecarError {
    return new SvidecarError(
      'SVD_UPSTREAM_PROTOCOL',
      `upstream ${this.#upstream} sent a response that cannot be relayed: ${what}`,
      { reason },
    )
  }

  #cut(controller: Dispatcher.DispatchController, last: Buffer, err: SvidecarError): void {
    if (this.#done) return
    this.#headPending = false
    // Every wrapper learns the body is over (a meter settles what it counted); what they would add is dropped.
    this.#wrappersEnded = true
    for (const w of this.#wrappers ?? []) {
      const tail = w.end?.()
      if (tail instanceof Promise) tail.catch(() => undefined)
    }
    if (!this.#res.destroyed) this.#res.end(last)
    this.#finish(this.#res.statusCode, err.code, err)
    // The client has its answer; the upstream must stop generating (and billing) for it.
    controller.abort(err)
  }

  /** The sidecar gives up on a response undici still considers alive: stop it, then answer the client. */
  #fail(controller: Dispatcher.DispatchController, err: SvidecarError): void {
    this.#reply(err)
    // The connection's byte stream cannot be trusted after a response we refused: undici must not reuse it.
    controller.abort(err)
  }

  #reply(e: SvidecarError): void {
    if (this.#done) return
    const midResponse = this.#res.headersSent
    publishUpstreamFailed({
      upstream: this.#upstream,
      code: e.code,
      ...(e.reason === undefined ? {} : { reason: e.reason }),
      status: e.status,
      midResponse,
      ...(e.cause === undefined ? {} : { cause: e.cause }),
    })
    if (!midResponse) {
      sendError(this.#res, e, this.#errorStyle)
      // A body still arriving has nowhere to go: drain it so the connection stays usable. Not while the client
      // still waits for a 100: it has sent nothing, and Node closes that connection after the answer.
      if (!this.#req.complete && !awaitsContinue(this.#req)) this.#req.resume()
    } else {
      // Mid-response: a truncated body must not look complete. Reset the client's connection.
      this.#res.destroy(e)
    }
    this.#finish(e.status, e.code, e)
  }

  #finish(status: number, code: string | undefined, err?: SvidecarError): void {
    if (this.#done) return
    this.#done = true
    if (!this.#wrappersEnded) for (const w of this.#wrappers ?? []) w.closed?.()
    this.#onEnd?.(status, code, err)
  }
}

// A function and an argument rather than a closure per response.
function flushPendingHead(handler: ProxyHandler): void {
  handler.flushHead()
}

function clientGone(): SvidecarError {
  return new SvidecarError('SVD_REQUEST_INVALID', 'client closed the connection', {
    reason: 'CLIENT_ABORTED',
  })
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

/** No Transfer-Encoding, or exactly one "chunked". */
function onlyChunked(value: string | string[] | undefined): boolean {
  if (value === undefined) return true
  const codings = (Array.isArray(value) ? value.join(',') : value)
    .split(',')
    .map((c) => c.trim().toLowerCase())
  return codings.length === 1 && codings[0] === 'chunked'
}

function withoutField(flat: readonly string[], lower: string): string[] {
  const out: string[] = []
  for (let i = 0; i + 1 < flat.length; i += 2) {
    if ((flat[i] as string).toLowerCase() !== lower) out.push(flat[i] as string, flat[i + 1] as string)
  }
  return out
}

/** Runs a chunk through wrappers from `from` on; synchronous until one answers with a promise. */
function throughWrappers(
  chunk: Buffer,
  wrappers: readonly ResponseWrapper[],
  from: number,
): Buffer | Promise<Buffer> {
  let out = chunk
  for (let i = from; i < wrappers.length; i++) {
    const w = wrappers[i] as ResponseWrapper
    if (w.data === undefined) continue
    const r = w.data(out)
    if (r instanceof Promise) return r.then((b) => throughWrappers(b, wrappers, i + 1))
    out = r
  }
  return out
}

/** Each wrapper's last bytes, passed through the wrappers after it, joined. */
function endWrappers(
  wrappers: readonly ResponseWrapper[],
  from: number,
): Buffer | undefined | Promise<Buffer | undefined> {
  const parts: Buffer[] = []
  for (let i = from; i < wrappers.length; i++) {
    const w = wrappers[i] as ResponseWrapper
    const r = w.end?.()
    if (r instanceof Promise) {
      return r.then(async (tail) => {
        if (tail !== undefined) parts.push(await throughWrappers(tail, wrappers, i + 1))
        const rest = await endWrappers(wrappers, i + 1)
        if (rest !== undefined) parts.push(rest)
        return parts.length === 0 ? undefined : Buffer.concat(parts)
      })
    }
    if (r !== undefined && r.length > 0) {
      const next = throughWrappers(r, wrappers, i + 1)
      if (next instanceof Promise) {
        return next.then(async (b) => {
          parts.push(b)
          const rest = await endWrappers(wrappers, i + 1)
          if (rest !== undefined) parts.push(rest)
          return Buffer.concat(parts)
        })
      }
      parts.push(next)
    }
  }
  return parts.length === 0 ? undefined : Buffer.concat(parts)
}

/** The flat header list with the wrappers' removals and replacements applied. */
function editHeaders(flat: string[], wrappers: readonly ResponseWrapper[]): string[] {
  const remove = new Set<string>()
  const set: Record<string, string> = {}
  for (const w of wrappers) {
    for (const name of w.headers?.remove ?? []) remove.add(name.toLowerCase())
    for (const [name, value] of Object.entries(w.headers?.set ?? {})) {
      remove.add(name.toLowerCase())
      set[name.toLowerCase()] = value
    }
  }
  if (remove.size === 0) return flat
  const out: string[] = []
  for (let i = 0; i + 1 < flat.length; i += 2) {
    if (!remove.has((flat[i] as string).toLowerCase())) out.push(flat[i] as string, flat[i + 1] as string)
  }
  for (const [name, value] of Object.entries(set)) out.push(name, value)
  return out
}
