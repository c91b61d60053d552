/**
 * Work a request causes but its upstream call does not need (the audit line,
 * the prompt's token estimate) runs after that call has gone out. A plain
 * setImmediate is not enough: undici (8.x, GHSA-35p6-xmwp-9g52) writes a
 * request on a reused keep-alive connection from a setImmediate of its own,
 * queued when the request is dispatched, so that bytes or a FIN already
 * waiting on the idle socket are read first. An immediate queued earlier on
 * the request path (the policy decision's audit line comes before dispatch)
 * runs before that write and holds the request back: 115 µs at the median on
 * the LLM path (bench/RESULTS.md, issue 10). One more hop puts the work on
 * the next turn's check phase, behind every immediate queued in this one.
 */
export function afterDispatch(fn: () => void): void {
  setImmediate(setImmediate, fn)
}

/**
 * Items made on request paths, handled together once those requests have gone out (one {@link afterDispatch}
 * per batch), or at once when `flush` is called (a scrape, the process's exit). Order is kept.
 */
export class DeferredBatch<T> {
  #items: T[] = []
  readonly #handle: (items: T[]) => void

  constructor(handle: (items: T[]) => void) {
    this.#handle = handle
  }

  push(item: T): void {
    this.#items.push(item)
    if (this.#items.length === 1) afterDispatch(this.flush)
  }

  /** Handles what is waiting now; the flush already scheduled then finds nothing. */
  readonly flush = (): void => {
    if (this.#items.length === 0) return
    const items = this.#items
    this.#items = []
    this.#handle(items)
  }
}
