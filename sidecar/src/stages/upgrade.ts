/** Only WebSocket may upgrade; h2c and others would tunnel past every check. */
import { SvidecarError } from '../errors/index.ts'
import type { Stage } from '../pipeline/stage.ts'

export function upgradeStage(): Stage {
  return {
    name: 'upgrade',
    onRequest(exchange) {
      if (!exchange.upgrade) return undefined
      const upgrade = exchange.req.headers.upgrade
      return upgrade?.toLowerCase() === 'websocket'
        ? undefined
        : new SvidecarError('SVD_REQUEST_INVALID', `upgrade to "${upgrade ?? ''}" is not supported`, {
            reason: 'UPGRADE_NOT_SUPPORTED',
          })
    },
  }
}
