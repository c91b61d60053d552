/**
 * One OpenTelemetry span per request, in the pipeline only when tracing is
 * configured. It runs after the trace stage: a traceparent the client sent
 * becomes the span's parent; then the exchange's traceparent (what the
 * upstream gets and the audit line records) names this span instead, so the
 * upstream's spans are its children. The span ends with the exchange.
 */
import type { Tracing } from '../observe/tracing.ts'
import type { Stage } from '../pipeline/stage.ts'

export function tracingStage(tracing: Tracing): Stage {
  return {
    name: 'tracing',
    onRequest(exchange) {
      const sent = exchange.req.headers.traceparent
      // The trace stage kept the client's header only when it was valid.
      const parent = typeof sent === 'string' && sent === exchange.traceparent ? sent : undefined
      const span = tracing.start({
        direction: exchange.direction,
        listener: exchange.listener,
        method: exchange.method,
        path: exchange.path,
        ...(parent === undefined ? {} : { parent }),
      })
      exchange.traceparent = span.traceparent
      exchange.headers.set.traceparent = span.traceparent
      exchange.onEnd((status, code) => {
        const subject = exchange.subject?.toString()
        const peer = exchange.peer?.toString()
        span.end({
          // A client that left got no status.
          status: code === 'CLIENT_ABORTED' ? 0 : status,
          // The sidecar's own refusals and a client that left; an upstream's socket error stays a status.
          ...(code !== undefined && (code.startsWith('SVD_') || code === 'CLIENT_ABORTED') ? { code } : {}),
          ...(exchange.route === undefined ? {} : { upstream: exchange.route }),
          ...(subject === undefined ? {} : { subject }),
          ...(peer === undefined ? {} : { peer }),
        })
      })
      return undefined
    },
  }
}
