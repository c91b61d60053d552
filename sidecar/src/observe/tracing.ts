/**
 * OpenTelemetry spans, when the config asks for them. This module is the
 * seam: it names what the request path needs (start a span from the
 * exchange's traceparent, end it with the outcome) and loads the
 * OpenTelemetry SDK (observe/otel.ts) only when `tracing:` is configured, so
 * a sidecar without tracing neither loads those packages nor runs a stage
 * for them.
 */
import type { Tracing, TracingConfig } from './spans.ts'

export type { RequestSpan, SpanEnd, SpanStart, Tracing, TracingConfig } from './spans.ts'

export async function startTracing(config: TracingConfig): Promise<Tracing> {
  const { createOtelTracing } = await import('./otel.ts')
  return createOtelTracing(config)
}
