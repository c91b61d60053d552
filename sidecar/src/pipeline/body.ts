/**
 * The capped body read for stages that must see a request body (lenses
 * that parse JSON). Bytes are counted as they arrive and the read stops at
 * the cap: a body over it is refused, never held whole. A client waiting
 * for `100 Continue` gets it first, or it would never send the body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { SvidecarError } from '../errors/index.ts'
import { sendContinue } from '../forwarder/expect.ts'

export function readCappedBody(req: IncomingMessage, res: ServerResponse, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = req.headers['content-length']
    if (declared !== undefined && Number(declared) > maxBytes) {
      reject(tooLarge(maxBytes))
      return
    }
    sendContinue(req, res)
    const chunks: Buffer[] = []
    let received = 0
    const onData = (chunk: Buffer) => {
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
