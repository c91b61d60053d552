/**
 * The capped body read for stages that must see a request body (lenses
 * that parse JSON). Bytes are counted as they arrive and the read stops at
 * the cap: a body over it is refused, never held whole. A client waiting
 * for `100 Continue` gets it first, or it would never send the body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { SvidecarError } from '../errors/index.ts'
import { sendContinue } from '../forwarder/expect.ts'

export interface BodyReadLimits {
  maxBytes: number
  /** A body that sends nothing this long is cut (0: no limit), as body-guard.ts does for streamed bodies. */
  idleTimeoutMs?: number
}

export function readCappedBody(
  req: IncomingMessage,
  res: ServerResponse,
  limits: BodyReadLimits,
): Promise<Buffer> {
  const { maxBytes } = limits
  const idleMs = limits.idleTimeoutMs ?? 0
  return new Promise((resolve, reject) => {
    const declared = req.headers['content-length']
    if (declared !== undefined && Number(declared) > maxBytes) {
      reject(tooLarge(maxBytes))
      return
    }
    sendContinue(req, res)
    const chunks: Buffer[] = []
    let received = 0
    let timer: NodeJS.Timeout | undefined
    if (idleMs > 0) {
      timer = setTimeout(() => {
        cleanup()
        req.pause()
        reject(
          new SvidecarError('SVD_REQUEST_BODY_TIMEOUT', `the request body sent nothing for ${idleMs} ms`, {
            reason: 'BODY_IDLE',
          }),
        )
      }, idleMs)
      timer.unref()
    }
    const onData = (chunk: Buffer) => {
      timer?.refresh()
      received += chunk.length
      if (received > maxBytes) {
        cleanup()
        req.pause()
        reject(tooLarge(maxBytes))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resolve(Buffer.concat(chunks, received))
    }
    const onClose = () => {
      cleanup()
      reject(
        new SvidecarError('SVD_REQUEST_INVALID', 'client closed the connection', {
          reason: 'CLIENT_ABORTED',
        }),
      )
    }
    const cleanup = () => {
      if (timer !== undefined) clearTimeout(timer)
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('close', onClose)
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('close', onClose)
  })
}

function tooLarge(maxBytes: number): SvidecarError {
  return new SvidecarError(
    'SVD_REQUEST_BODY_TOO_LARGE',
    `the request body is over the ${maxBytes} bytes this route reads before deciding`,
    { reason: 'BODY_OVER_STAGE_LIMIT' },
  )
}
