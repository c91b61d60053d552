/**
 * Values kept per scope and key (per upstream and tool name, per lister and
 * item), at most `max` in all; when full, the oldest entry of the oldest
 * scope goes first. Two levels, so a list of 1,000 items looks each up by the
 * name it already has instead of building a joined key for each.
 */
export class ScopedTable<V> {
  readonly #scopes = new Map<string, Map<string, V>>()
  readonly #max: number
  #size = 0

  constructor(max: number) {
    this.#max = max
  }

  /** How many values it holds. */
  get size(): number {
    return this.#size
  }

  get(scope: string, key: string): V | undefined {
    return this.#scopes.get(scope)?.get(key)
  }

  /** Sets the value, which becomes the newest entry. */
  set(scope: string, key: string, value: V): void {
    let entries = this.#scopes.get(scope)
    if (entries === undefined) {
      entries = new Map()
      this.#scopes.set(scope, entries)
    }
    if (entries.has(key)) entries.delete(key)
    else this.#size++
    entries.set(key, value)
    if (this.#size > this.#max) this.#forgetOldest()
  }

  #forgetOldest(): void {
    for (const [scope, entries] of this.#scopes) {
      const oldest = entries.keys().next()
      if (!oldest.done) {
        entries.delete(oldest.value)
        this.#size--
      }
      if (entries.size === 0) this.#scopes.delete(scope)
      if (!oldest.done) return
    }
  }
}
