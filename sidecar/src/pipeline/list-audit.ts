/**
 * Which items left out of lists were audited lately. An agent lists its
 * tools at every session start; a server with 1,000 tools of which the agent
 * may see ten would otherwise write 990 audit lines per `tools/list`, the
 * same ones each time. An item left out is audited the first time, and again
 * once `windowMs` has passed, or when what decided it (rule, mode) changes.
 */
export class ListAuditWindow {
  /** Per scope (who listed, from which upstream): per item, when it was audited and what decided it. */
  readonly #scopes = new Map<string, Map<string, { at: number; tag: string }>>()
  readonly #max: number
  readonly #windowMs: number
  readonly #now: () => number
  #size = 0

  /** At most `max` items are remembered (the oldest scope's oldest forgotten first). */
  constructor(max: number, windowMs: number, now: () => number = Date.now) {
    this.#max = max
    this.#windowMs = windowMs
    this.#now = now
  }

  /** Whether `item`, left out of a list for `scope` by what `tag` names, is to be audited at `now`. */
  due(scope: string, item: string, tag: string, now: number = this.#now()): boolean {
    let items = this.#scopes.get(scope)
    if (items === undefined) {
      items = new Map()
      this.#scopes.set(scope, items)
    }
    const seen = items.get(item)
    if (seen !== undefined) {
      if (seen.tag === tag && now - seen.at < this.#windowMs) return false
      // Re-inserted, so the oldest entries are the first to go when the table is full.
      items.delete(item)
      this.#size--
    }
    items.set(item, { at: now, tag })
    if (++this.#size > this.#max) this.#forgetOldest()
    return true
  }

  #forgetOldest(): void {
    for (const [scope, items] of this.#scopes) {
      const oldest = items.keys().next()
      if (!oldest.done) {
        items.delete(oldest.value)
        this.#size--
      }
      if (items.size === 0) this.#scopes.delete(scope)
      if (!oldest.done) return
    }
  }
}
