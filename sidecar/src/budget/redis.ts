/**
 * Budgets shared by every replica through one Redis: the same arithmetic as
 * memory.ts, each operation one Lua script so that checking and reserving
 * across all of a call's budgets is atomic. One hash per budget and window
 * (`<prefix><id>:m:<minute>`, `<prefix><id>:d:<day>`; fields u used,
 * r reserved, q requests) that expires on its own once its window is over.
 * Commands never queue while Redis is away: they fail at once (or at the
 * timeout), and the budget stage applies `onUnavailable`. Nothing Redis
 * counted is left behind by an outage: a settlement that could not be sent
 * is kept and sent once Redis is back, and a command that timed out still
 * gets its answer, late: a reservation Redis made after the call was refused
 * is handed back (its request uncounted), and an extension granted after the
 * stream stopped waiting is added to its reservation, or handed back if that
 * was settled meanwhile. A settlement that timed out may have run, and is not
 * sent twice.
 */
import { Redis } from 'ioredis'
import { SvidecarError } from '../errors/index.ts'
import {
  type BudgetKey,
  type BudgetStore,
  type LimitKind,
  type Remaining,
  type Reservation,
  type ReserveResult,
  secondsUntilReset,
  type Windows,
  windowsAt,
} from './store.ts'

export interface RedisBudgetOptions {
  /** redis:// or rediss:// URL; it may hold a password, so it is never logged. */
  url: string
  keyPrefix: string
  /** How long one command may take before the budget counts as unavailable. */
  timeoutMs: number
  /** Called on connection errors (rate-limited by the caller); never given the URL. */
  onError?: (err: Error) => void
}

const MINUTE_TTL_S = 180
/** Settlements and releases kept while Redis is away; past this many the oldest are given up (their windows expire). */
const MAX_UNSENT = 10_000
const DAY_TTL_S = 2 * 86_400
const NONE = -1
const KINDS: LimitKind[] = ['tokensPerMinute', 'tokensPerDay', 'requestsPerMinute']

// Per budget key i: KEYS[2i-1] minute hash, KEYS[2i] day hash; its limits in ARGV after the fixed arguments,
// three per key (tokensPerMinute, tokensPerDay, requestsPerMinute; -1 = none). Returns what is left as three
// numbers (-1 = no such budget).
const COMMON = `
local function num(v) return tonumber(v) or 0 end
local function remaining(base)
  local left = {-1, -1, -1}
  for i = 1, #KEYS / 2 do
    local m, d = KEYS[2*i-1], KEYS[2*i]
    local tpm, tpd, rpm = tonumber(ARGV[base+3*i-2]), tonumber(ARGV[base+3*i-1]), tonumber(ARGV[base+3*i])
    local v = {}
    if tpm >= 0 then v[1] = tpm - num(redis.call('HGET', m, 'u')) - num(redis.call('HGET', m, 'r')) end
    if tpd >= 0 then v[2] = tpd - num(redis.call('HGET', d, 'u')) - num(redis.call('HGET', d, 'r')) end
    if rpm >= 0 then v[3] = rpm - num(redis.call('HGET', m, 'q')) end
    for k = 1, 3 do
      if v[k] ~= nil then
        if v[k] < 0 then v[k] = 0 end
        if left[k] < 0 or v[k] < left[k] then left[k] = v[k] end
      end
    end
  end
  return left
end
local function touch(mttl, dttl)
  for i = 1, #KEYS / 2 do
    redis.call('EXPIRE', KEYS[2*i-1], mttl)
    redis.call('EXPIRE', KEYS[2*i], dttl)
  end
end
`

// ARGV: tokens, minute ttl, day ttl, limits... Returns {1, grant, left...} or {0, key index, kind index}.
const RESERVE = `${COMMON}
local grant = tonumber(ARGV[1])
for i = 1, #KEYS / 2 do
  local m, d = KEYS[2*i-1], KEYS[2*i]
  local tpm, tpd, rpm = tonumber(ARGV[3+3*i-2]), tonumber(ARGV[3+3*i-1]), tonumber(ARGV[3+3*i])
  if rpm >= 0 and num(redis.call('HGET', m, 'q')) + 1 > rpm then return {0, i, 3} end
  if tpm >= 0 then
    local avail = tpm - num(redis.call('HGET', m, 'u')) - num(redis.call('HGET', m, 'r'))
    if avail <= 0 then return {0, i, 1} end
    if avail < grant then grant = avail end
  end
  if tpd >= 0 then
    local avail = tpd - num(redis.call('HGET', d, 'u')) - num(redis.call('HGET', d, 'r'))
    if avail <= 0 then return {0, i, 2} end
    if avail < grant then grant = avail end
  end
end
for i = 1, #KEYS / 2 do
  redis.call('HINCRBY', KEYS[2*i-1], 'q', 1)
  redis.call('HINCRBY', KEYS[2*i-1], 'r', grant)
  redis.call('HINCRBY', KEYS[2*i], 'r', grant)
end
touch(ARGV[2], ARGV[3])
local left = remaining(3)
return {1, grant, left[1], left[2], left[3]}
`

// ARGV: tokens, minute ttl, day ttl, limits... Returns the grant.
const EXTEND = `${COMMON}
local grant = tonumber(ARGV[1])
for i = 1, #KEYS / 2 do
  local m, d = KEYS[2*i-1], KEYS[2*i]
  local tpm, tpd = tonumber(ARGV[3+3*i-2]), tonumber(ARGV[3+3*i-1])
  if tpm >= 0 then
    local avail = tpm - num(redis.call('HGET', m, 'u')) - num(redis.call('HGET', m, 'r'))
    if avail < grant then grant = avail end
  end
  if tpd >= 0 then
    local avail = tpd - num(redis.call('HGET', d, 'u')) - num(redis.call('HGET', d, 'r'))
    if avail < grant then grant = avail end
  end
end
if grant <= 0 then return 0 end
for i = 1, #KEYS / 2 do
  redis.call('HINCRBY', KEYS[2*i-1], 'r', grant)
  redis.call('HINCRBY', KEYS[2*i], 'r', grant)
end
touch(ARGV[2], ARGV[3])
return grant
`

// ARGV: reserved, used, minute ttl, day ttl, limits... Returns what is left.
const SETTLE = `${COMMON}
local reserved, used = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  for _, k in ipairs({KEYS[2*i-1], KEYS[2*i]}) do
    local r = num(redis.call('HGET', k, 'r')) - reserved
    if r < 0 then r = 0 end
    redis.call('HSET', k, 'r', r)
    redis.call('HINCRBY', k, 'u', used)
  end
end
touch(ARGV[3], ARGV[4])
local left = remaining(4)
return left
`

// ARGV: tokens, requests, minute ttl, day ttl. Undoes what a reservation or extension Redis answered too late
// counted: its tokens reserved, and its request (a reservation refused to the caller is no request).
const RELEASE = `${COMMON}
local tokens, requests = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  local m, d = KEYS[2*i-1], KEYS[2*i]
  for _, k in ipairs({m, d}) do
    local r = num(redis.call('HGET', k, 'r')) - tokens
    if r < 0 then r = 0 end
    redis.call('HSET', k, 'r', r)
  end
  if requests > 0 then
    local q = num(redis.call('HGET', m, 'q')) - requests
    if q < 0 then q = 0 end
    redis.call('HSET', m, 'q', q)
  end
end
touch(ARGV[3], ARGV[4])
return 1
`

type Script = (keys: string[], args: (string | number)[]) => Promise<unknown>

export class RedisBudgetStore implements BudgetStore {
  readonly #redis: Redis
  readonly #prefix: string
  readonly #reserve: Script
  readonly #extend: Script
  readonly #settle: Script
  readonly #release: Script
  readonly #timeoutMs: number
  #connected = false
  /** Settlements and releases not sent because the connection was down, in order: sent on the next `ready`. */
  #unsent: { script: Script; keys: string[]; args: (string | number)[] }[] = []
  /** Reservations whose settlement has been sent (or kept to send): a late extension of one is handed back. */
  readonly #settled = new WeakSet<Reservation>()

  constructor(options: RedisBudgetOptions) {
    this.#prefix = options.keyPrefix
    this.#timeoutMs = options.timeoutMs
    this.#redis = new Redis(options.url, {
      // A budget check must answer now: no queueing while disconnected, no retries of a command.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // No commandTimeout: #call stops waiting at the timeout but still hears the answer (see above).
      connectTimeout: Math.max(options.timeoutMs, 1000),
      retryStrategy: (times) => Math.min(100 * times, 2000),
      lazyConnect: false,
    })
    // Without a listener ioredis prints every reconnect failure itself; the caller decides what to log.
    this.#redis.on('error', (err: Error) => options.onError?.(err))
    this.#redis.once('ready', () => {
      this.#connected = true
    })
    this.#redis.on('ready', () => this.#sendUnsent())
    const script = (lua: string): Script => {
      let sha: string | undefined
      return async (keys, args) => {
        sha ??= (await this.#redis.script('LOAD', lua)) as string
        try {
          return await this.#redis.evalsha(sha, keys.length, ...keys, ...args)
        } catch (err) {
          // The script cache is empty after a Redis restart: load it again, once.
          if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
            sha = (await this.#redis.script('LOAD', lua)) as string
            return await this.#redis.evalsha(sha, keys.length, ...keys, ...args)
          }
          throw err
        }
      }
    }
    this.#reserve = script(RESERVE)
    this.#extend = script(EXTEND)
    this.#settle = script(SETTLE)
    this.#release = script(RELEASE)
  }

  #firstConnection(): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    return Promise.race([
      this.ready(),
      new Promise<void>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no connection to redis yet')), this.#timeoutMs)
      }),
    ]).finally(() => clearTimeout(timer))
  }

  /** Resolves once connected (tests and start-up logs); the store works without waiting for it. */
  ready(): Promise<void> {
    if (this.#redis.status === 'ready') return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.#redis.once('ready', () => resolve())
      this.#redis.once('end', () => reject(new Error('redis connection ended')))
    })
  }

  async reserve(keys: readonly BudgetKey[], tokens: number, now: number): Promise<ReserveResult> {
    const windows = windowsAt(now)
    const redisKeys = this.#keys(keys, windows)
    const r = (await this.#call(
      this.#reserve,
      redisKeys,
      [Math.max(0, Math.floor(tokens)), MINUTE_TTL_S, DAY_TTL_S, ...limitArgs(keys)],
      (late) => {
        // The call was refused as unavailable, yet Redis reserved for it: hand it back, request and all.
        const answer = late as number[]
        if (answer[0] === 1)
          this.#send(this.#release, redisKeys, [answer[1] as number, 1, MINUTE_TTL_S, DAY_TTL_S])
      },
    )) as number[]
    if (r[0] !== 1) {
      const key = keys[(r[1] as number) - 1] as BudgetKey
      const kind = KINDS[(r[2] as number) - 1] as LimitKind
      return { ok: false, key, kind, retryAfter: secondsUntilReset(kind, now) }
    }
    return {
      ok: true,
      reservation: { keys, windows, tokens: r[1] as number },
      remaining: remainingFrom(r.slice(2)),
    }
  }

  async extend(reservation: Reservation, tokens: number): Promise<number> {
    const redisKeys = this.#keys(reservation.keys, reservation.windows)
    const grant = Number(
      await this.#call(
        this.#extend,
        redisKeys,
        [Math.max(0, Math.floor(tokens)), MINUTE_TTL_S, DAY_TTL_S, ...limitArgs(reservation.keys)],
        (late) => {
          const granted = Number(late)
          if (!(granted > 0)) return
          // Settled already: Redis ran the extension first (one connection, in order), so hand it back after.
          if (this.#settled.has(reservation))
            this.#send(this.#release, redisKeys, [granted, 0, MINUTE_TTL_S, DAY_TTL_S])
          else reservation.tokens += granted
        },
      ),
    )
    reservation.tokens += grant
    return grant
  }

  async settle(reservation: Reservation, used: number): Promise<Remaining> {
    const keys = this.#keys(reservation.keys, reservation.windows)
    const args = [
      reservation.tokens,
      Math.max(0, Math.floor(used)),
      MINUTE_TTL_S,
      DAY_TTL_S,
      ...limitArgs(reservation.keys),
    ]
    reservation.tokens = 0
    this.#settled.add(reservation)
    if (this.#connected && this.#redis.status !== 'ready') {
      // Certainly not sent (no offline queue): kept for when Redis is back; the caller still hears of the outage.
      this.#keep(this.#settle, keys, args)
      throw unavailable(new Error('redis is not connected'))
    }
    return remainingFrom((await this.#call(this.#settle, keys, args)) as number[])
  }

  /** Sends a command nobody waits for: now when connected, else once Redis is back. */
  #send(script: Script, keys: string[], args: (string | number)[]): void {
    if (this.#redis.status !== 'ready') {
      this.#keep(script, keys, args)
      return
    }
    // A failure here may have run in Redis after all, so it is not kept again.
    script(keys, args).catch(() => {})
  }

  #keep(script: Script, keys: string[], args: (string | number)[]): void {
    if (this.#unsent.length >= MAX_UNSENT) this.#unsent.shift()
    this.#unsent.push({ script, keys, args })
  }

  #sendUnsent(): void {
    const batch = this.#unsent
    this.#unsent = []
    for (const { script, keys, args } of batch) this.#send(script, keys, args)
  }

  /** The raw counters of one key and window (tests check the balance). */
  async counters(
    key: BudgetKey,
    windows: Windows,
  ): Promise<{ minute: Record<string, string>; day: Record<string, string> }> {
    const [m, d] = this.#keys([key], windows) as [string, string]
    return { minute: await this.#redis.hgetall(m), day: await this.#redis.hgetall(d) }
  }

  async close(): Promise<void> {
    this.#redis.disconnect(false)
  }

  #keys(keys: readonly BudgetKey[], w: Windows): string[] {
    const out: string[] = []
    for (const k of keys)
      out.push(`${this.#prefix}${k.id}:m:${w.minute}`, `${this.#prefix}${k.id}:d:${w.day}`)
    return out
  }

  /**
   * Runs a script, waiting at most the timeout. An answer that comes later still arrives (ioredis has no command
   * timeout here) and goes to `late`, which undoes what the caller was told did not happen.
   */
  async #call(
    script: Script,
    keys: string[],
    args: (string | number)[],
    late?: (answer: unknown) => void,
  ): Promise<unknown> {
    let op: Promise<unknown> | undefined
    let timer: NodeJS.Timeout | undefined
    try {
      // Only the very first connection is waited for (a call right after start); an outage fails at once.
      if (!this.#connected) await this.#firstConnection()
      op = script(keys, args)
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`redis did not answer within ${this.#timeoutMs} ms`)),
          this.#timeoutMs,
        )
      })
      return await Promise.race([op, timeout])
    } catch (err) {
      op?.then(
        (answer) => late?.(answer),
        () => {},
      )
      throw unavailable(err)
    } finally {
      clearTimeout(timer)
    }
  }
}

function unavailable(cause: unknown): SvidecarError {
  return new SvidecarError('SVD_BUDGET_UNAVAILABLE', 'the budget store (Redis) cannot be reached', {
    reason: 'REDIS_UNAVAILABLE',
    cause,
  })
}

function limitArgs(keys: readonly BudgetKey[]): number[] {
  const out: number[] = []
  for (const k of keys)
    out.push(
      k.limits.tokensPerMinute ?? NONE,
      k.limits.tokensPerDay ?? NONE,
      k.limits.requestsPerMinute ?? NONE,
    )
  return out
}

function remainingFrom(left: number[]): Remaining {
  const out: Remaining = {}
  KINDS.forEach((kind, i) => {
    const v = left[i]
    if (typeof v === 'number' && v >= 0) out[kind] = v
  })
  return out
}
