/**
 * Only WebSocket may upgrade; h2c and others would tunnel past every check. The listener sends only GET
 * handshakes naming websocket down this path (listener/server.ts); the rest is defence in depth.
 */
import { SvidecarError } from '../errors/index.ts'
import { hasBody } from '../forwarder/http.ts'
import type { Stage } from '../pipeline/stage.ts'

export function upgradeStage(): Stage {
  return {
    name: 'upgrade',
    onRequest(exchange) {
      if (!exchange.upgrade) return undefined
      // After the head the bytes are WebSocket frames; a declared body makes them two things at once.
      if (hasBody(exchange.req))
        return new SvidecarError('SVD_REQUEST_INVALID', 'a WebSocket handshake cannot carry a body', {
          reason: 'UPGRADE_WITH_BODY',
        })
      const upgrade = exchange.req.headers.upgrade
      return upgrade?.toLowerCase() === 'websocket'
        ? undefined
        : new SvidecarError('SVD_REQUEST_INVALID', `upgrade to "${upgrade ?? ''}" is not supported`, {
            reason: 'UPGRADE_NOT_SUPPORTED',
          })
    },
  }
}
