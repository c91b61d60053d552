/**
 * Session binding (session era): an `Mcp-Session-Id` belongs to the SPIFFE
 * ID whose `initialize` response carried it, and no other identity may use
 * it. The table is bounded (the least recently used binding goes first)
 * and a binding unused for the idle time expires; one with a stream open
 * (the session's GET stream) is in use however long the stream lasts. A
 * session the table does not know is refused as expired, so the client
 * starts over with `initialize` and its new session is bound again.
 */

export type SessionCheck = 'ok' | 'unknown' | 'foreign'

/** Who a session belongs to, when it was last used, and how many of its streams are open. */
interface Binding {
  readonly owner: string
  used: number
  open: number
}

export interface SessionTableOptions {
  maxSessions: number
  idleTimeoutMs: number
  /** For tests. */
  now?: () => number
}

export class SessionTable {
  readonly #max: number
  readonly #idleMs: number
  readonly #now: () => number
  /** Session id → owner and last use; Map order is least recently used first. */
  readonly #sessions = new Map<string, Binding>()

  constructor(options: SessionTableOptions) {
    this.#max = options.maxSessions
    this.#idleMs = options.idleTimeoutMs
    this.#now = options.now ?? Date.now
  }

  get size(): number {
    return this.#sessions.size
  }

  /** Binds a session the upstream just created to `owner`; a session already bound keeps its first owner. */
  bind(sessionId: string, owner: string): void {
    const now = this.#now()
    const known = this.#sessions.get(sessionId)
    if (known !== undefined && !this.#idle(known, now)) {
      this.#touch(sessionId, known, now)
      return
    }
    this.#sessions.delete(sessionId)
    this.#sessions.set(sessionId, { owner, used: now, open: 0 })
    while (this.#sessions.size > this.#max) {
      const oldest = this.#sessions.keys().next().value as string
      this.#sessions.delete(oldest)
    }
  }

  check(sessionId: string, subject: string): SessionCheck {
    const s = this.#sessions.get(sessionId)
    if (s === undefined) return 'unknown'
    const now = this.#now()
    if (this.#idle(s, now)) {
      this.#sessions.delete(sessionId)
      return 'unknown'
    }
    if (s.owner !== subject) return 'foreign'
    this.#touch(sessionId, s, now)
    return 'ok'
  }

  /** A stream of the session opened: the binding does not expire until it closes. */
  hold(sessionId: string): void {
    const s = this.#sessions.get(sessionId)
    if (s !== undefined) s.open++
  }

  /** A stream `hold` counted ended; the binding's idle time starts again from now. */
  release(sessionId: string): void {
    const s = this.#sessions.get(sessionId)
    if (s === undefined || s.open === 0) return
    s.open--
    s.used = this.#now()
  }

  /** The session ended (DELETE answered, or the upstream no longer knows it). */
  end(sessionId: string): void {
    this.#sessions.delete(sessionId)
  }

  #idle(s: Binding, now: number): boolean {
    return s.open === 0 && now - s.used > this.#idleMs
  }

  #touch(sessionId: string, s: Binding, now: number): void {
    s.used = now
    // Move to the most recently used end.
    this.#sessions.delete(sessionId)
    this.#sessions.set(sessionId, s)
  }
}
