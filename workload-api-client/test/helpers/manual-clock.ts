import type { WatchClock } from '../../src/watch.ts'

/** A clock the test moves by hand: sleeps end only when advance() passes their deadline. */
export class ManualClock implements WatchClock {
  #now = 0
  #sleepers: Array<{ at: number; wake: () => void }> = []

  now(): number {
    return this.#now
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const sleeper = { at: this.#now + ms, wake: resolve }
      this.#sleepers.push(sleeper)
      signal.addEventListener('abort', () => resolve(), { once: true })
    })
  }

  /** Sleeps started and not yet woken. */
  get pending(): number {
    return this.#sleepers.length
  }

  advance(ms: number): void {
    this.#now += ms
    const due = this.#sleepers.filter((s) => s.at <= this.#now)
    this.#sleepers = this.#sleepers.filter((s) => s.at > this.#now)
    for (const s of due) s.wake()
  }
}
