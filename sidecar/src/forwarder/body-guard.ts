/**
 * The request body as the upstream gets it: counted, so no more than
 * maxBodyBytes ever passes (the chunk that would cross the limit is not
 * forwarded; the stream fails with SVD_REQUEST_BODY_TOO_LARGE), and timed,
 * so a client that stops sending mid-body is cut after the body idle limit
 * (SVD_REQUEST_BODY_TIMEOUT). The failure
 * reaches the forwarder as the body's error: undici aborts the upstream
 * request with it, and the client gets it as a response when none started.
 *
 * Idle time counts only while the proxy is waiting for the client: when
 * back-pressure from the upstream holds the client's stream, silence is ours.
 *
 * The guard is a plain Readable fed from the request's 'data' events rather than a Transform the request is
 * piped into: one stream state instead of two and none of pipe()'s listeners and ticks, on every request
 * that has a body (bench/hop-cpu.ts; figures in bench/RESULTS.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { SvidecarError } from '../errors/index.ts'

export interface BodyLimits {
  /** 0 = no limit. */
  maxBodyBytes: number
  /** 0 = no limit. */
  bodyIdleTimeoutMs: number
}

export function guardBody(req: IncomingMessage, res: ServerResponse, limits: BodyLimits): Readable {
  return new GuardedBody(req, res, limits)
}

class GuardedBody extends Readable {
  readonly #req: IncomingMessage
  readonly #limits: BodyLimits
  #received = 0
  #timer: NodeJS.Timeout | undefined
  /** undici stopped reading before the end: what still comes is read away, not passed on. */
  #discarding = false
  // The request's listeners, kept to be removed again.
  readonly #onData = (chunk: Buffer) => this.#data(chunk)
  readonly #onEnd = () => {
    this.#stop()
    this.push(null)
  }
  readonly #onReqClose = () => this.#stop()

  constructor(req: IncomingMessage, res: ServerResponse, limits: BodyLimits) {
    super()
    this.#req = req
    this.#limits = limits
    // undici listens once it writes the body; until then an early failure must not go unhandled.
    this.on('error', () => {
      this.#stop()
      // The exchange may have ended already (the upstream answered without reading the body): free the client.
      if (res.writableEnded && !req.complete) req.socket.destroy()
    })
    req.once('close', this.#onReqClose)
    req.on('data', this.#onData)
    req.on('end', this.#onEnd)
    this.#arm()
  }

  /** undici asks for more: let the client's stream flow again (it was paused when the buffer filled). */
  override _read(): void {
    if (this.#req.isPaused()) this.#req.resume()
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const req = this.#req
    if (this.#discarding) {
      // Already reading the rest away.
    } else if (err === null && !req.complete) {
      // undici stops reading once the upstream answered without the whole body. Node would leave the rest unread
      // and the connection held for as long as the client likes; read it away instead, under the same limits.
      this.#discarding = true
      req.off('end', this.#onEnd)
      req.resume()
      this.#arm()
    } else if (err !== null) {
      // Failed (a limit, or undici gave up): the request no longer feeds it; whoever answers drains the rest.
      this.#detach()
    } else {
      req.off('data', this.#onData)
      req.off('end', this.#onEnd)
    }
    callback(err)
  }

  #data(chunk: Buffer): void {
    this.#received += chunk.length
    const max = this.#limits.maxBodyBytes
    if (this.#discarding) {
      if (max > 0 && this.#received > max) this.#req.socket.destroy()
      else this.#arm()
      return
    }
    if (max > 0 && this.#received > max) {
      // The chunk that crosses the limit is not passed on.
      this.#detach()
      this.destroy(
        new SvidecarError('SVD_REQUEST_BODY_TOO_LARGE', `the request body passed the limit of ${max} bytes`, {
          reason: 'BODY_OVER_LIMIT',
        }),
      )
      return
    }
    this.#arm()
    if (!this.push(chunk)) this.#req.pause()
  }

  /** The request stops feeding this stream (as unpipe did): paused, until someone resumes it to drain it. */
  #detach(): void {
    this.#req.off('data', this.#onData)
    this.#req.off('end', this.#onEnd)
    this.#req.pause()
  }

  #arm(): void {
    const ms = this.#limits.bodyIdleTimeoutMs
    if (ms <= 0) return
    if (this.#timer === undefined) {
      this.#timer = setTimeout(onIdle, ms, this)
      this.#timer.unref()
    } else this.#timer.refresh()
  }

  #stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** The idle timer ran out. */
  idle(): void {
    this.#timer = undefined
    const req = this.#req
    if (req.complete) return
    if (this.destroyed) {
      // Only the discarded rest of the body was outstanding (see _destroy); the exchange itself is over.
      req.socket.destroy()
      return
    }
    // Paused by back-pressure: the upstream is slow, not the client.
    if (req.readableFlowing === false) {
      this.#arm()
      return
    }
    this.#detach()
    const ms = this.#limits.bodyIdleTimeoutMs
    this.destroy(
      new SvidecarError('SVD_REQUEST_BODY_TIMEOUT', `the request body sent nothing for ${ms} ms`, {
        reason: 'BODY_IDLE',
      }),
    )
  }
}

function onIdle(body: GuardedBody): void {
  body.idle()
}
