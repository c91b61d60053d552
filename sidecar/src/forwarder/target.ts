import type { IncomingMessage } from 'node:http'
import { SvidecarError } from '../errors/index.ts'

/**
 * The forwarders send origin-form targets only (`/path?query`): undici refuses anything else, and a WebSocket
 * URL built from another form would be invalid. `OPTIONS *` (asterisk-form) addresses the server itself, not a
 * resource, so there is nothing to forward it to.
 */
export function targetRefusal(req: IncomingMessage): SvidecarError | undefined {
  const target = req.url ?? '/'
  if (target.startsWith('/')) return undefined
  return target === '*'
    ? new SvidecarError(
        'SVD_REQUEST_UNSUPPORTED',
        `${req.method} * is not forwarded: it addresses the server itself`,
        {
          reason: 'ASTERISK_FORM',
        },
      )
    : new SvidecarError(
        'SVD_REQUEST_UNSUPPORTED',
        'only origin-form request targets (starting with "/") are forwarded',
        {
          reason: 'NOT_ORIGIN_FORM',
        },
      )
}
