/**
 * Lets a dispatcher of undici 8 serve requests from Node's global fetch.
 *
 * Node bundles its own undici (`process.versions.undici`, 6.x in Node 22 and
 * 24), whose fetch hands the dispatcher a handler of the older callback style:
 * `onConnect(abort)`, `onHeaders(status, rawHeaders, resume)`, `onData`,
 * `onComplete(rawTrailers)`, `onError`, `onUpgrade`. undici 8 accepts only the
 * controller style (`onRequestStart(controller)`, `onResponseStart`, ...) and
 * refuses the other with "invalid onRequestStart method". This wraps a
 * callback-style handler into a controller-style one; a handler that already
 * has `onRequestStart` is passed through untouched.
 *
 * Only structural types here: undici is an optional peer dependency, loaded
 * by the `workload-api-client/undici` entry point alone.
 */
import type { Duplex } from 'node:stream'

type HeaderValues = Record<string, string | string[] | undefined>
type RawHeaders = readonly (Buffer | string | readonly (Buffer | string)[])[]

/** The controller undici passes to controller-style handlers (the members used here). */
export interface DispatchControllerLike {
  readonly rawHeaders?: RawHeaders | HeaderValues | null
  readonly rawTrailers?: RawHeaders | HeaderValues | null
  abort(reason: Error): void
  pause(): void
  resume(): void
}

/** A callback-style handler, as undici 6's fetch writes it. */
export interface CallbackHandler {
  onConnect?(abort: (reason?: Error) => void, context?: unknown): void
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean
  onData?(chunk: Buffer): boolean
  onComplete?(rawTrailers: Buffer[] | null): void
  onError?(err: Error): void
  onUpgrade?(statusCode: number, rawHeaders: Buffer[], socket: Duplex): void
  onResponseStarted?(): void
  onBodySent?(chunk: Buffer, totalBytesSent?: number): void
  onRequestSent?(): void
}

/** True for a handler written only in the callback style. */
export function isCallbackHandler(handler: object): handler is CallbackHandler {
  const h = handler as Record<string, unknown>
  return (
    typeof h.onRequestStart !== 'function' &&
    (typeof h.onConnect === 'function' ||
      typeof h.onHeaders === 'function' ||
      typeof h.onError === 'function')
  )
}

/** The controller-style face of a callback-style handler. */
export class CallbackHandlerAdapter {
  readonly #handler: CallbackHandler

  constructor(handler: CallbackHandler) {
    this.#handler = handler
  }

  onRequestStart(controller: DispatchControllerLike, context: unknown): void {
    this.#handler.onConnect?.((reason) => controller.abort(reason ?? new Error('request aborted')), context)
  }

  onRequestUpgrade(
    controller: DispatchControllerLike,
    statusCode: number,
    headers: HeaderValues,
    socket: Duplex,
  ): void {
    this.#handler.onUpgrade?.(statusCode, rawOf(controller.rawHeaders, headers), socket)
  }

  onResponseStart(
    controller: DispatchControllerLike,
    statusCode: number,
    headers: HeaderValues,
    statusMessage?: string,
  ): void {
    const more = this.#handler.onHeaders?.(
      statusCode,
      rawOf(controller.rawHeaders, headers),
      () => controller.resume(),
      statusMessage ?? '',
    )
    // The callback style returns false to ask for a pause, and resumes through the function it was given.
    if (more === false) controller.pause()
  }

  onResponseData(controller: DispatchControllerLike, chunk: Buffer): void {
    if (this.#handler.onData?.(chunk) === false) controller.pause()
  }

  onResponseEnd(controller: DispatchControllerLike, trailers: HeaderValues): void {
    this.#handler.onComplete?.(rawOf(controller.rawTrailers, trailers))
  }

  onResponseError(_controller: DispatchControllerLike, err: Error): void {
    this.#handler.onError?.(err)
  }

  onResponseStarted(): void {
    this.#handler.onResponseStarted?.()
  }

  onBodySent(chunk: Buffer, totalBytesSent?: number): void {
    this.#handler.onBodySent?.(chunk, totalBytesSent)
  }

  onRequestSent(): void {
    this.#handler.onRequestSent?.()
  }
}

/**
 * Headers as the callback style wants them: a flat list of name, value, name,
 * value Buffers, each repeated header on its own pair. The controller's raw
 * list (what the server sent, in order) is used when undici has one.
 */
function rawOf(
  raw: RawHeaders | HeaderValues | null | undefined,
  parsed: HeaderValues | undefined,
): Buffer[] {
  const out: Buffer[] = []
  if (Array.isArray(raw)) {
    for (const item of raw as RawHeaders) {
      if (Array.isArray(item)) {
        // Never produced for HTTP/1.1, but an entry may carry several values.
        for (const v of item) out.push(toBuffer(v))
      } else {
        out.push(toBuffer(item as Buffer | string))
      }
    }
    return out
  }
  const source = raw ?? parsed ?? {}
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined) continue
    for (const v of Array.isArray(value) ? value : [value]) out.push(Buffer.from(name, 'latin1'), toBuffer(v))
  }
  return out
}

function toBuffer(v: Buffer | string): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'latin1') : v
}
