/**
 * Which items left out of lists were audited lately. An agent lists its
 * tools at every session start; a server with 1,000 tools of which the agent
 * may see ten would otherwise write 990 audit lines per `tools/list`, the
 * same ones each time. An item left out is audited the first time, and again
 * once `windowMs` has passed, or when what decided it (rule, mode) changes.
 */
import type { PolicyDecision } from '../policy/engine.ts'
import { ScopedTable } from './scoped-table.ts'

/** An item left out is audited again after this long. */
const WINDOW_MS = 5 * 60_000
const MAX_ITEMS = 100_000

/** What decided a denial, as the window tells one decision from another: its rule (or reason) and mode. */
export function auditTag(decision: PolicyDecision): string {
  return `${decision.ruleId ?? decision.reason}\u0000${decision.mode}`
}

export class ListAuditWindow {
  /** Per scope (who listed, from which upstream, which list): per item, when it was audited, what decided it. */
  readonly #seen: ScopedTable<{ readonly at: number; readonly tag: string }>
  readonly #windowMs: number
  readonly #now: () => number

  /** At most `max` items are remembered (the oldest scope's oldest forgotten first). */
  constructor(max = MAX_ITEMS, windowMs = WINDOW_MS, now: () => number = Date.now) {
    this.#seen = new ScopedTable(max)
    this.#windowMs = windowMs
    this.#now = now
  }

  /** Whether `item`, left out of a list for `scope` by what `tag` names, is to be audited at `now`. */
  due(scope: string, item: string, tag: string, now: number = this.#now()): boolean {
    const seen = this.#seen.get(scope, item)
    if (seen !== undefined && seen.tag === tag && now - seen.at < this.#windowMs) return false
    this.#seen.set(scope, item, { at: now, tag })
    return true
  }
}
