/**
 * The OpenTelemetry SDK behind observe/tracing.ts: one span per request,
 * batched and exported over OTLP/HTTP (JSON) to a collector. Loaded only when
 * the config has `tracing:`. Kinds follow what a proxy is to each side:
 * inbound the sidecar serves a peer (SERVER), outbound it calls an upstream
 * for its app (CLIENT).
 */
import { ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace'
import type { RequestSpan, SpanEnd, SpanStart, Tracing, TracingConfig } from './spans.ts'

const PARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})/

function parentContext(traceparent: string | undefined) {
  const m = traceparent === undefined ? null : PARENT.exec(traceparent)
  if (m === null) return ROOT_CONTEXT
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: m[2] as string,
    spanId: m[3] as string,
    traceFlags: Number.parseInt(m[4] as string, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  })
}

function traceparentOf(span: Span): string {
  const c = span.spanContext()
  return `00-${c.traceId}-${c.spanId}-${(c.traceFlags & TraceFlags.SAMPLED) === 0 ? '00' : '01'}`
}

export function createOtelTracing(config: TracingConfig): Tracing {
  const exporter = new OTLPTraceExporter({
    url: config.otlp.endpoint,
    headers: Object.fromEntries(config.otlp.headers),
    timeoutMillis: config.otlp.timeoutMs,
  })
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.serviceName }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors: [new BatchSpanProcessor({ exporter })],
  })
  // Not registered globally: the sidecar's tracer is its own, whatever else runs in the process.
  const tracer = provider.getTracer('svidecar')
  return {
    start(s: SpanStart): RequestSpan {
      const span = tracer.startSpan(
        s.method === '' ? 'HTTP' : s.method,
        {
          kind: s.direction === 'inbound' ? SpanKind.SERVER : SpanKind.CLIENT,
          attributes: {
            'http.request.method': s.method,
            'url.path': s.path,
            'svidecar.direction': s.direction,
            'svidecar.listener': s.listener,
          },
        },
        parentContext(s.parent),
      )
      return {
        traceparent: traceparentOf(span),
        end(e: SpanEnd) {
          if (e.status > 0) span.setAttribute('http.response.status_code', e.status)
          if (e.upstream !== undefined) span.setAttribute('svidecar.upstream', e.upstream)
          if (e.subject !== undefined) span.setAttribute('svidecar.subject', e.subject)
          if (e.peer !== undefined) span.setAttribute('svidecar.peer', e.peer)
          if (e.code !== undefined) {
            // OTel's error.type: the low-cardinality reason the request failed; ours are the SVD_* codes.
            span.setAttribute('error.type', e.code)
            span.setStatus({ code: SpanStatusCode.ERROR, message: e.code })
          } else if (e.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
          span.end()
        },
      }
    },
    async shutdown() {
      await provider.shutdown()
    },
  }
}
