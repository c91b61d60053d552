/**
 * Where budgets are counted: in this process (memory.ts) or shared by every
 * replica through Redis (redis.ts). Both implement the same arithmetic on
 * fixed windows (the UTC minute and the UTC day a call starts in):
 *
 *   available = limit − used − reserved
 *
 * `reserve` checks every budget a call falls under and, only when all have
 * room, counts the request and reserves up to the estimate (never more than
 * is available, so `used + reserved` stays within the limit); `extend` asks
 * for more of the same windows while a stream runs; `settle` hands the
 * reservation back and records what the call really used. A call counts in
 * the windows it started in, so a settlement always finds its reservation.
 */

export interface BudgetLimits {
  readonly tokensPerMinute?: number
  readonly tokensPerDay?: number
  readonly requestsPerMinute?: number
}

/** One budget a call falls under: a configured limit for one subject (and model group). */
export interface BudgetKey {
  /** Stable and unique per limit, subject and model group; the store's key. */
  readonly id: string
  /** The configured limit's name (for errors and the audit line). */
  readonly name: string
  readonly limits: BudgetLimits
}

export type LimitKind = 'tokensPerMinute' | 'tokensPerDay' | 'requestsPerMinute'

/** What is left of the tightest budget, per kind (absent: no budget of that kind applies). */
export type Remaining = Partial<Record<LimitKind, number>>

export interface Windows {
  /** The UTC minute (ms since the epoch / 60 000) and day the call started in. */
  readonly minute: number
  readonly day: number
}

export interface Reservation {
  readonly keys: readonly BudgetKey[]
  readonly windows: Windows
  /** Tokens reserved so far (the first grant plus every extension). */
  tokens: number
}

export type ReserveResult =
  | { ok: true; reservation: Reservation; remaining: Remaining }
  | {
      ok: false
      /** The budget that is used up. */
      key: BudgetKey
      kind: LimitKind
      /** Seconds until its window resets. */
      retryAfter: number
    }

export interface BudgetStore {
  /** Counts the request and reserves up to `tokens` (at least 1 available token in every token budget). */
  reserve(keys: readonly BudgetKey[], tokens: number, now: number): Promise<ReserveResult>
  /** Adds up to `tokens` to a reservation; resolves to what was granted (0: the budget is used up). */
  extend(reservation: Reservation, tokens: number): Promise<number>
  /** Returns the reservation and records `used` tokens; resolves to what is left. */
  settle(reservation: Reservation, used: number): Promise<Remaining>
  close(): Promise<void>
}

export const MINUTE_MS = 60_000
export const DAY_MS = 86_400_000

export function windowsAt(now: number): Windows {
  return { minute: Math.floor(now / MINUTE_MS), day: Math.floor(now / DAY_MS) }
}

/** Seconds from `now` until the window of `kind` that contains `now` ends. */
export function secondsUntilReset(kind: LimitKind, now: number): number {
  const size = kind === 'tokensPerDay' ? DAY_MS : MINUTE_MS
  return Math.max(1, Math.ceil(((Math.floor(now / size) + 1) * size - now) / 1000))
}

/** Per-window counters of one budget key. */
export interface Counters {
  used: number
  reserved: number
  requests: number
}

/** The minimum of what is left per kind across keys, given each key's minute and day counters. */
export function remainingOf(
  keys: readonly BudgetKey[],
  counters: (key: BudgetKey) => { minute: Counters; day: Counters },
): Remaining {
  const out: Remaining = {}
  const low = (kind: LimitKind, v: number) => {
    const left = Math.max(0, v)
    out[kind] = Math.min(out[kind] ?? Number.POSITIVE_INFINITY, left)
  }
  for (const key of keys) {
    const { minute, day } = counters(key)
    const l = key.limits
    if (l.tokensPerMinute !== undefined)
      low('tokensPerMinute', l.tokensPerMinute - minute.used - minute.reserved)
    if (l.tokensPerDay !== undefined) low('tokensPerDay', l.tokensPerDay - day.used - day.reserved)
    if (l.requestsPerMinute !== undefined) low('requestsPerMinute', l.requestsPerMinute - minute.requests)
  }
  return out
}
