/**
 * A bounded LRU of decisions keyed by the serialized input, each entry
 * living at most `ttlMs`. A Map keeps insertion order, so re-inserting on a
 * hit makes the oldest entry the first key: eviction is O(1).
 */
export class DecisionCache<V> {
  readonly #entries = new Map<string, { value: V; expires: number }>()
  readonly #max: number
  readonly #ttlMs: number
  readonly #now: () => number

  constructor(maxEntries: number, ttlMs: number, now: () => number) {
    this.#max = maxEntries
    this.#ttlMs = ttlMs
    this.#now = now
  }

  get size(): number {
    return this.#entries.size
  }

  get(key: string): V | undefined {
    const e = this.#entries.get(key)
    if (e === undefined) return undefined
    this.#entries.delete(key)
    if (e.expires <= this.#now()) return undefined
    this.#entries.set(key, e)
    return e.value
  }

  set(key: string, value: V): void {
    if (this.#max <= 0 || this.#ttlMs <= 0) return
    this.#entries.delete(key)
    while (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next().value as string
      this.#entries.delete(oldest)
    }
    this.#entries.set(key, { value, expires: this.#now() + this.#ttlMs })
  }

  clear(): void {
    this.#entries.clear()
  }
}
