/** New requests while the listener drains, also on connections opened before: the client should go elsewhere. */
import { SvidecarError } from '../errors/index.ts'
import type { Stage } from '../pipeline/stage.ts'

export interface Drainable {
  readonly name: string
  readonly draining: boolean
}

export function drainStage(listener: Drainable): Stage {
  return {
    name: 'drain',
    onRequest: () =>
      listener.draining
        ? new SvidecarError(
            'SVD_SHUTTING_DOWN',
            `listener ${listener.name} is draining and takes no new requests`,
          )
        : undefined,
  }
}
