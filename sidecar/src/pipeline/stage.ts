/**
 * What a pipeline stage is. `onRequest` looks at the exchange and either
 * lets it go on (undefined) or refuses it with an SvidecarError, which the
 * pipeline turns into the one refusal response. A stage may answer with a
 * promise (a decision service); the pipeline waits only when it gets one.
 */
import type { SvidecarError } from '../errors/index.ts'
import type { ResponseHead, ResponseWrapper } from '../forwarder/http.ts'
import type { FrameFilter } from '../forwarder/websocket.ts'
import type { Exchange } from './exchange.ts'

export type { FrameFilter, ResponseHead, ResponseWrapper }

export type StageResult = SvidecarError | undefined

export interface Stage {
  /** For logs and tests. */
  readonly name: string
  /**
   * The stage reads the whole request body before `onRequest`, up to this many bytes (larger bodies are
   * refused with 413); the body is then in `exchange.body` and is what the upstream gets. A function decides
   * per request (a lens that reads only the requests it understands); undefined from it means stream.
   */
  readonly bodyLimit?: number | ((exchange: Exchange) => number | undefined)
  onRequest(exchange: Exchange): StageResult | Promise<StageResult>
  /** Called when the upstream's response head arrives (plain requests only). */
  wrapResponse?(exchange: Exchange, head: ResponseHead): ResponseWrapper | undefined
  /** Called when a WebSocket upgrade is relayed: sees each message (a lens that decides per message). */
  wrapUpgrade?(exchange: Exchange): FrameFilter | undefined
}
