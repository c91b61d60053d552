/**
 * The audit log: one JSON line per policy decision (audit-line.ts), to
 * stdout or to a size-rotated file (audit-file.ts). It subscribes to the
 * policyDecision channel like metrics and logs do, so a slow or failing disk
 * costs the request path nothing: lines that cannot be written are counted
 * and the first failure is logged, the process carries on.
 */
import type { Writable } from 'node:stream'
import { DeferredBatch } from '../forwarder/after-dispatch.ts'
import { RotatingFile } from './audit-file.ts'
import { formatAuditLine } from './audit-line.ts'
import { type AuditSink, type LostLines, StreamSink } from './audit-sink.ts'
import { formatUsageLine } from './audit-usage.ts'
import { type Direction, on, type PolicyDecisionEvent } from './events.ts'
import type { Logger } from './log.ts'

export type { AuditSink }

export interface AuditConfig {
  output: 'stdout' | 'file'
  /** Required when output is file. */
  path?: string
  maxBytes: number
  maxFiles: number
}

export interface AuditOptions {
  logger: Logger
  /** Lines that were never written (disk or stream error, full queue). */
  onLost?: (lines: number) => void
  /** Where `output: stdout` writes; process.stdout unless a test gives another stream. */
  stdout?: Writable
  maxQueueBytes?: number
}

export interface AuditLog {
  /** Starts writing this scope's decisions; returns the function that stops it. */
  subscribe(mine?: (e: { listener: string; direction: Direction }) => boolean): () => void
  /** Writes one decision now (the subscription's handler; tests call it directly). */
  record(e: PolicyDecisionEvent): void
  flush(): Promise<void>
  close(): Promise<void>
}

// Audit logs not closed yet: what they hold in the process's last turn is written on its way out.
const exiting = new Set<() => void>()
let exitHook = false

export function createAuditLog(config: AuditConfig, options: AuditOptions): AuditLog {
  let failing = false
  const onLost: LostLines = (lines, cause) => {
    try {
      options.onLost?.(lines)
      // Once: a full disk would otherwise log a line per decision; the metric keeps counting.
      if (failing) return
      failing = true
      options.logger.error(
        'audit log write failed: decisions are being lost (counted in svidecar_audit_write_errors_total, logged once)',
        {
          output: config.output,
          ...(config.path === undefined ? {} : { path: config.path }),
          lines,
          error: cause,
        },
      )
    } catch {
      // Reached from a diagnostics_channel subscriber, where a throw would end the process.
    }
  }
  const sink: AuditSink =
    config.output === 'file'
      ? new RotatingFile({
          path: config.path ?? 'audit.log',
          maxBytes: config.maxBytes,
          maxFiles: config.maxFiles,
          onLost,
          ...(options.maxQueueBytes === undefined ? {} : { maxQueueBytes: options.maxQueueBytes }),
        })
      : new StreamSink(options.stdout ?? process.stdout, onLost, options.maxQueueBytes)
  // Lines are made after the upstream request went out, not on the request path: formatting a decision's line
  // cost its request ~35 µs at the median and ~100 µs at p99 (bench/RESULTS.md, issue 10). Events are not changed
  // after they are published; order is kept (one queue); flush, close and the process's exit make what is pending
  // at once.
  const pending = new DeferredBatch<() => string>((batch) => {
    for (const format of batch) {
      let line: string
      try {
        line = format()
      } catch (err) {
        // A subscriber that throws would take the process down (diagnostics_channel rethrows on the next tick);
        // a line that cannot be made is counted as lost instead.
        onLost(1, err)
        continue
      }
      sink.write(line)
    }
  })
  const onExit = () => {
    pending.flush()
    void sink.flush()
  }
  exiting.add(onExit)
  if (exiting.size === 1 && !exitHook) {
    exitHook = true
    process.on('exit', () => {
      for (const f of exiting) f()
    })
  }
  const record = (e: PolicyDecisionEvent) => pending.push(() => formatAuditLine(e))
  return {
    record,
    subscribe(mine) {
      const offDecisions = on('policyDecision', (e) => {
        if (mine === undefined || mine(e)) record(e)
      })
      // LLM calls add a line of their own kind when they end (audit-usage.ts).
      const offUsage = on('llmUsage', (e) => {
        if (mine === undefined || mine(e)) pending.push(() => formatUsageLine(e))
      })
      return () => {
        offDecisions()
        offUsage()
      }
    },
    flush: () => {
      pending.flush()
      return sink.flush()
    },
    close: () => {
      pending.flush()
      exiting.delete(onExit)
      return sink.close()
    },
  }
}
