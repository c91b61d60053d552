/**
 * Max-Forwards (RFC 9110 §7.6.2) on OPTIONS (TRACE is never forwarded, see
 * request-target.ts): an intermediary decrements it before forwarding, and
 * at zero answers as the final recipient instead.
 */
import { SvidecarError } from '../errors/index.ts'
import type { Exchange } from '../pipeline/exchange.ts'

// What the sidecar itself would let through; the upstream's own Allow is what a forwarded OPTIONS returns.
const ALLOW = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'

export function applyMaxForwards(exchange: Exchange): SvidecarError | undefined {
  const req = exchange.req
  if (req.method !== 'OPTIONS') return undefined
  const raw = req.headers['max-forwards']
  if (raw === undefined) return undefined
  const value = String(raw).trim()
  if (!/^[0-9]{1,10}$/.test(value))
    return new SvidecarError('SVD_REQUEST_INVALID', 'Max-Forwards is not a decimal number', {
      reason: 'BAD_MAX_FORWARDS',
    })
  const hops = Number(value)
  if (hops > 0) {
    // Replaces every copy the client sent.
    exchange.headers.set['max-forwards'] = String(hops - 1)
    return undefined
  }
  // The pipeline writes `reply`; the "refusal" only ends the pipeline and names why nothing was forwarded.
  exchange.reply = { status: 200, headers: { allow: ALLOW }, body: '' }
  return new SvidecarError(
    'SVD_REQUEST_UNSUPPORTED',
    'OPTIONS with Max-Forwards: 0 is answered by the sidecar',
    {
      reason: 'MAX_FORWARDS_ZERO',
    },
  )
}
