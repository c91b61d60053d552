/** What tracing is to the rest of the sidecar: config, a span per request, shutdown (observe/tracing.ts). */
import type { Direction } from './events.ts'

export interface TracingConfig {
  otlp: {
    /** Full OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces. */
    endpoint: string
    /** Sent with every export (an API key for a hosted backend); never logged. */
    headers: Map<string, string>
    /** Per export request. */
    timeoutMs: number
  }
  /** Share of new traces (no sampled parent) to record, 0 to 1. A sampled parent is always followed. */
  sampleRatio: number
  /** `service.name` of the spans. */
  serviceName: string
}

export interface SpanStart {
  direction: Direction
  listener: string
  method: string
  /** Without the query. */
  path: string
  /** The client's W3C traceparent when it sent a valid one: the span's parent. */
  parent?: string
}

export interface SpanEnd {
  status: number
  /** The sidecar's own error code when it answered (SVD_*), or the client having left. */
  code?: string
  upstream?: string
  /** Verified SPIFFE IDs. */
  subject?: string
  peer?: string
}

export interface RequestSpan {
  /** The traceparent naming this span, for the upstream and the audit line. */
  readonly traceparent: string
  end(outcome: SpanEnd): void
}

export interface Tracing {
  start(span: SpanStart): RequestSpan
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>
}
