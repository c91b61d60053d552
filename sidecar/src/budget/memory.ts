/**
 * Budgets counted in this process: the default, right for one replica.
 * Every operation runs to completion in one turn of the event loop, so it is
 * as atomic as the Redis scripts; windows that ended are dropped as new ones
 * start.
 */
import {
  type BudgetKey,
  type BudgetStore,
  type Counters,
  type LimitKind,
  type Remaining,
  type Reservation,
  type ReserveResult,
  remainingOf,
  secondsUntilReset,
  type Windows,
  windowsAt,
} from './store.ts'

export class MemoryBudgetStore implements BudgetStore {
  readonly #minutes = new Map<string, Counters>()
  readonly #days = new Map<string, Counters>()
  #minute = -1
  #day = -1

  reserve(keys: readonly BudgetKey[], tokens: number, now: number): Promise<ReserveResult> {
    const windows = windowsAt(now)
    this.#sweep(windows)
    let grant = Number.isFinite(tokens) ? Math.max(0, Math.floor(tokens)) : 0
    for (const key of keys) {
      const m = this.#get(this.#minutes, key, windows.minute)
      const d = this.#get(this.#days, key, windows.day)
      const l = key.limits
      const refuse = (kind: LimitKind): Promise<ReserveResult> =>
        Promise.resolve({ ok: false, key, kind, retryAfter: secondsUntilReset(kind, now) })
      if (l.requestsPerMinute !== undefined && m.requests + 1 > l.requestsPerMinute)
        return refuse('requestsPerMinute')
      if (l.tokensPerMinute !== undefined) {
        const avail = l.tokensPerMinute - m.used - m.reserved
        if (avail <= 0) return refuse('tokensPerMinute')
        grant = Math.min(grant, avail)
      }
      if (l.tokensPerDay !== undefined) {
        const avail = l.tokensPerDay - d.used - d.reserved
        if (avail <= 0) return refuse('tokensPerDay')
        grant = Math.min(grant, avail)
      }
    }
    for (const key of keys) {
      const m = this.#get(this.#minutes, key, windows.minute, true)
      const d = this.#get(this.#days, key, windows.day, true)
      m.requests++
      m.reserved += grant
      d.reserved += grant
    }
    const reservation: Reservation = { keys, windows, tokens: grant }
    return Promise.resolve({ ok: true, reservation, remaining: this.#remaining(keys, windows) })
  }

  extend(reservation: Reservation, tokens: number): Promise<number> {
    let grant = Math.max(0, Math.floor(tokens))
    const { keys, windows } = reservation
    for (const key of keys) {
      const m = this.#get(this.#minutes, key, windows.minute)
      const d = this.#get(this.#days, key, windows.day)
      if (key.limits.tokensPerMinute !== undefined)
        grant = Math.min(grant, Math.max(0, key.limits.tokensPerMinute - m.used - m.reserved))
      if (key.limits.tokensPerDay !== undefined)
        grant = Math.min(grant, Math.max(0, key.limits.tokensPerDay - d.used - d.reserved))
    }
    if (grant > 0)
      for (const key of keys) {
        this.#get(this.#minutes, key, windows.minute, true).reserved += grant
        this.#get(this.#days, key, windows.day, true).reserved += grant
      }
    reservation.tokens += grant
    return Promise.resolve(grant)
  }

  settle(reservation: Reservation, used: number): Promise<Remaining> {
    const { keys, windows } = reservation
    const u = Math.max(0, Math.floor(used))
    for (const key of keys) {
      // A window swept away meanwhile (the call outlived it) is recreated just to be settled: harmless.
      for (const [map, w] of [
        [this.#minutes, windows.minute],
        [this.#days, windows.day],
      ] as const) {
        const c = this.#get(map, key, w, true)
        c.reserved = Math.max(0, c.reserved - reservation.tokens)
        c.used += u
      }
    }
    reservation.tokens = 0
    return Promise.resolve(this.#remaining(keys, windows))
  }

  /** The counters of one key (tests check that nothing leaked). */
  counters(key: BudgetKey, windows: Windows): { minute: Counters; day: Counters } {
    return {
      minute: { ...this.#get(this.#minutes, key, windows.minute) },
      day: { ...this.#get(this.#days, key, windows.day) },
    }
  }

  close(): Promise<void> {
    this.#minutes.clear()
    this.#days.clear()
    return Promise.resolve()
  }

  #remaining(keys: readonly BudgetKey[], windows: Windows): Remaining {
    return remainingOf(keys, (key) => ({
      minute: this.#get(this.#minutes, key, windows.minute),
      day: this.#get(this.#days, key, windows.day),
    }))
  }

  #get(map: Map<string, Counters>, key: BudgetKey, window: number, create = false): Counters {
    const id = `${key.id}@${window}`
    let c = map.get(id)
    if (c === undefined) {
      c = { used: 0, reserved: 0, requests: 0 }
      if (create) map.set(id, c)
    }
    return c
  }

  /** Drops windows two or more periods old (the previous one stays for calls still settling). */
  #sweep(w: Windows): void {
    if (w.minute !== this.#minute) {
      this.#minute = w.minute
      for (const id of this.#minutes.keys()) if (windowOf(id) < w.minute - 1) this.#minutes.delete(id)
    }
    if (w.day !== this.#day) {
      this.#day = w.day
      for (const id of this.#days.keys()) if (windowOf(id) < w.day - 1) this.#days.delete(id)
    }
  }
}

function windowOf(id: string): number {
  return Number(id.slice(id.lastIndexOf('@') + 1))
}
