/**
 * The demo's view of its sidecars' audit logs: each sidecar writes its audit
 * lines into one of these streams instead of stdout; the demo prints the
 * ones a step produced, trimmed to the fields that tell the story, after
 * that step's own line.
 */
import { Writable } from 'node:stream'

export type AuditRecord = Record<string, unknown>

// Decision lines and llm.usage lines, each cut down to what the demo explains; everything else stays in the JSON.
const DECISION_FIELDS = ['action', 'resource', 'decision', 'rule']
const USAGE_FIELDS = [
  'kind',
  'model',
  'status',
  'code',
  'tokensIn',
  'tokensOut',
  'estimated',
  'budgetRemaining',
  'budgetRefusal',
]

export class DemoAudit {
  readonly stream: Writable
  #pending: AuditRecord[] = []
  #partial = ''

  /** `keep` says which lines the demo shows at all (the rest are dropped as they come). */
  constructor(keep: (record: AuditRecord) => boolean) {
    this.stream = new Writable({
      write: (chunk: Buffer | string, _encoding, done) => {
        this.#partial += chunk.toString()
        const lines = this.#partial.split('\n')
        this.#partial = lines.pop() ?? ''
        for (const line of lines) {
          if (line === '') continue
          let record: AuditRecord
          try {
            record = JSON.parse(line) as AuditRecord
          } catch {
            continue // every audit line is JSON; a demo never stops over one that is not
          }
          if (keep(record)) this.#pending.push(record)
        }
        done()
      },
    })
  }

  /**
   * Prints the lines that arrived since the last flush, once `until` holds for them (the audit log writes
   * asynchronously, and an `llm.usage` line only when its call has ended) or after two seconds regardless.
   */
  async flush(print: (line: string) => void, until: (records: AuditRecord[]) => boolean): Promise<void> {
    const deadline = Date.now() + 2000
    while (!until(this.#pending) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    for (const record of this.#pending) print(`  audit: ${trim(record)}`)
    this.#pending = []
  }
}

function trim(record: AuditRecord): string {
  const fields = record.kind === 'llm.usage' ? USAGE_FIELDS : DECISION_FIELDS
  const kept: AuditRecord = {}
  for (const f of fields) if (record[f] !== undefined) kept[f] = record[f]
  return JSON.stringify(kept)
}

/** Conditions for `flush`: an llm.usage line arrived; a decision on this resource arrived. */
export const usageLine = (records: AuditRecord[]) => records.some((r) => r.kind === 'llm.usage')
export const decisionOn = (resource: string) => (records: AuditRecord[]) =>
  records.some((r) => r.resource === resource && r.kind === undefined)
