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
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { type Readable, Transform } from 'node:stream'
import { SvidecarError } from '../errors/index.ts'

export interface BodyLimits {
  /** 0 = no limit. */
  maxBodyBytes: number
  /** 0 = no limit. */
  bodyIdleTimeoutMs: number
}

export function guardBody(req: IncomingMessage, res: ServerResponse, limits: BodyLimits): Readable {
  let received = 0
  let timer: NodeJS.Timeout | undefined
  const body = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length
      if (limits.maxBodyBytes > 0 && received > limits.maxBodyBytes) {
        stop()
        callback(
          new SvidecarError(
            'SVD_REQUEST_BODY_TOO_LARGE',
            `the request body passed the limit of ${limits.maxBodyBytes} bytes`,
            { reason: 'BODY_OVER_LIMIT' },
          ),
        )
        return
      }
      arm()
      callback(null, chunk)
    },
    flush(callback) {
      stop()
      callback()
    },
  })
  // undici listens once it writes the body; until then an early failure must not go unhandled.
  body.on('error', () => {
    stop()
    // The exchange may have ended already (the upstream answered without reading the body): free the client.
    if (res.writableEnded && !req.complete) req.socket.destroy()
  })
  body.on('close', () => {
    if (req.complete || body.errored) return
    // undici stops reading once the upstream answered without the whole body. Node would leave the rest unread
    // and the connection held for as long as the client likes; read it away instead, under the same limits.
    req.unpipe(body)
    req.on('data', (chunk: Buffer) => {
      received += chunk.length
      if (limits.maxBodyBytes > 0 && received > limits.maxBodyBytes) req.socket.destroy()
      else arm()
    })
    req.resume()
    arm()
  })
  const arm = () => {
    if (limits.bodyIdleTimeoutMs <= 0) return
    if (timer === undefined) {
      timer = setTimeout(onIdle, limits.bodyIdleTimeoutMs)
      timer.unref()
    } else timer.refresh()
  }
  const stop = () => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }
  const onIdle = () => {
    timer = undefined
    if (req.complete) return
    if (body.destroyed) {
      // Only the discarded rest of the body was outstanding (see 'close' above); the exchange itself is over.
      req.socket.destroy()
      return
    }
    // Paused by back-pressure: the upstream is slow, not the client.
    if (req.readableFlowing === false) {
      arm()
      return
    }
    req.unpipe(body)
    body.destroy(
      new SvidecarError(
        'SVD_REQUEST_BODY_TIMEOUT',
        `the request body sent nothing for ${limits.bodyIdleTimeoutMs} ms`,
        { reason: 'BODY_IDLE' },
      ),
    )
  }
  req.once('close', stop)
  arm()
  req.pipe(body)
  return body
}
