/**
 * The workload's current X.509-SVID and bundles, kept up to date by a
 * FetchX509SVID watch. What a TLS stack asks on every handshake.
 *
 * State rules (SPIFFE Workload API and Workload Endpoint specs, status codes;
 * go-spiffe `workloadapi` X509Source):
 * - a malformed update is reported and ignored; the last good state stays;
 * - an outage (UNAVAILABLE, agent restart) keeps the cached SVID in service;
 * - PERMISSION_DENIED means the identity was revoked: the SVID is dropped;
 * - a configured hint or ID missing from an update is an error, never a silent fallback;
 * - an SVID is never handed out past its NotAfter, whatever the stream says.
 */
import { BundleSet } from './bundle-set.ts'
import type { WorkloadApiClient } from './client.ts'
import { SpiffeError } from './errors.ts'
import type { X509Context } from './responses.ts'
import { type SourceClientOptions, sourceClient } from './source-client.ts'
import type { TrustDomain } from './spiffe-id.ts'
import type { Watch } from './watch.ts'
import type { X509Bundle, X509BundleSource } from './x509-bundle.ts'
import type { X509Svid } from './x509-svid.ts'

export type SourceStatus = 'starting' | 'ready' | 'not-ready' | 'failed' | 'closed'

export interface X509SourceOptions extends SourceClientOptions {
  /** Select the SVID whose Workload API hint equals this. */
  hint?: string
  /** Select the SVID with this SPIFFE ID. */
  spiffeId?: string
  /** Clock, for tests. */
  now?: () => number
}

export interface WaitOptions {
  timeoutMs?: number
  signal?: AbortSignal
}

/** Called with the source after each applied update. */
export type X509SourceListener = (source: X509Source) => void
/** Called with each error the source's watch reports. */
export type SourceErrorListener = (err: SpiffeError) => void

// setTimeout stores delays in 32 bits; longer timers fire at once.
const MAX_TIMER_MS = 2 ** 31 - 1

export class X509Source implements X509BundleSource {
  readonly #client: WorkloadApiClient
  readonly #ownsClient: boolean
  readonly #select: { hint?: string; spiffeId?: string }
  readonly #now: () => number
  readonly #watch: Watch
  readonly #listeners = new Set<X509SourceListener>()
  /** waitReady()'s checks: woken by every change and by close(), unlike onUpdate listeners. */
  readonly #waiters = new Set<() => void>()
  readonly #errorListeners = new Set<SourceErrorListener>()
  #svid: X509Svid | undefined
  #bundles = new BundleSet<X509Bundle>()
  #status: SourceStatus = 'starting'
  #lastError: SpiffeError | undefined
  #fatal: SpiffeError | undefined
  #expiryTimer: NodeJS.Timeout | undefined
  #updates = 0

  /** Opens the source without waiting; see waitReady() and create(). */
  constructor(options: X509SourceOptions = {}) {
    const { client, owned } = sourceClient(options)
    this.#client = client
    this.#ownsClient = owned
    this.#select = {
      ...(options.hint === undefined ? {} : { hint: options.hint }),
      ...(options.spiffeId === undefined ? {} : { spiffeId: options.spiffeId }),
    }
    this.#now = options.now ?? Date.now
    this.#watch = this.#client.watchX509Context({
      onUpdate: (ctx) => this.#apply(ctx),
      onError: (err, info) => this.#failed(err, info.fatal),
    })
  }

  /** Opens a source and waits for its first usable SVID (default 30 s, then SPIFFE_WLAPI_TIMEOUT). */
  static async create(options: X509SourceOptions & WaitOptions = {}): Promise<X509Source> {
    const source = new X509Source(options)
    try {
      await source.waitReady({
        timeoutMs: options.timeoutMs ?? 30_000,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      })
    } catch (err) {
      source.close()
      throw err
    }
    return source
  }

  get status(): SourceStatus {
    return this.#status
  }

  /** True when an SVID inside its validity window is held. */
  get ready(): boolean {
    return this.#status === 'ready' && this.svid !== undefined
  }

  /** The current SVID, or undefined when none is held or it has expired. */
  get svid(): X509Svid | undefined {
    const svid = this.#svid
    if (svid === undefined || this.#now() > svid.notAfter.getTime()) return undefined
    return svid
  }

  /** The current SVID; throws SPIFFE_WLAPI_NO_IDENTITY when none is usable, SPIFFE_WLAPI_CLOSED after close(). */
  getX509Svid(): X509Svid {
    this.#checkOpen()
    const svid = this.svid
    if (svid !== undefined) return svid
    const why = this.#lastError === undefined ? '' : `: ${this.#lastError.message}`
    throw new SpiffeError('SPIFFE_WLAPI_NO_IDENTITY', `no usable X.509-SVID${why}`, {
      reason: this.#svid === undefined ? 'NO_SVID' : 'SVID_EXPIRED',
      ...(this.#lastError === undefined ? {} : { cause: this.#lastError }),
    })
  }

  get bundles(): BundleSet<X509Bundle> {
    return this.#bundles
  }

  /** The bundle of `trustDomain`; throws SPIFFE_WLAPI_CLOSED after close(), as go-spiffe's source errs. */
  getX509BundleForTrustDomain(trustDomain: TrustDomain): X509Bundle | undefined {
    this.#checkOpen()
    return this.#bundles.get(trustDomain)
  }

  // A closed source no longer follows the Workload API: what it held may have lost a revoked root since.
  #checkOpen(): void {
    if (this.#status === 'closed') throw new SpiffeError('SPIFFE_WLAPI_CLOSED', 'X509Source is closed')
  }

  /** The last error seen (stream failure, rejected update); cleared by the next good update. */
  get lastError(): SpiffeError | undefined {
    return this.#lastError
  }

  /** Number of applied updates that changed the SVID or bundles. */
  get updateCount(): number {
    return this.#updates
  }

  /**
   * Called after every change of SVID, bundles or readiness, never for the
   * caller's own close(). Returns an unsubscribe function.
   */
  onUpdate(listener: X509SourceListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  onError(listener: SourceErrorListener): () => void {
    this.#errorListeners.add(listener)
    return () => this.#errorListeners.delete(listener)
  }

  /** Resolves once ready; rejects on a fatal watch error, close, abort or timeout. */
  waitReady(options: WaitOptions = {}): Promise<void> {
    if (this.ready) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.ready) return done(resolve)
        if (this.#fatal !== undefined) return done(() => reject(this.#fatal))
        if (this.#status === 'closed') {
          return done(() => reject(new SpiffeError('SPIFFE_WLAPI_CLOSED', 'X509Source closed while waiting')))
        }
      }
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              const why = this.#lastError === undefined ? 'no update arrived' : this.#lastError.message
              done(() =>
                reject(
                  new SpiffeError(
                    'SPIFFE_WLAPI_TIMEOUT',
                    `no usable X.509-SVID within ${options.timeoutMs} ms (${why})`,
                    this.#lastError === undefined ? {} : { cause: this.#lastError },
                  ),
                ),
              )
            }, options.timeoutMs)
      const onAbort = () =>
        done(() => reject(new SpiffeError('SPIFFE_WLAPI_CLOSED', 'waiting aborted', { reason: 'ABORTED' })))
      this.#waiters.add(check)
      const unsubscribe = () => this.#waiters.delete(check)
      const unsubscribeErr = this.onError(check)
      options.signal?.addEventListener('abort', onAbort, { once: true })
      // A signal aborted before the call never fires 'abort': refuse now rather than at the timeout.
      if (options.signal?.aborted) return onAbort()
      function done(settle: () => void) {
        clearTimeout(timer)
        unsubscribe()
        unsubscribeErr()
        options.signal?.removeEventListener('abort', onAbort)
        settle()
      }
      check()
    })
  }

  close(): void {
    if (this.#status === 'closed') return
    this.#watch.close()
    if (this.#ownsClient) this.#client.close()
    clearTimeout(this.#expiryTimer)
    this.#svid = undefined
    this.#bundles = new BundleSet()
    this.#setStatus('closed')
    // Only pending waitReady() calls hear of it: the caller closed the source and needs no update.
    for (const wake of [...this.#waiters]) wake()
  }

  #apply(ctx: X509Context): void {
    if (this.#status === 'closed') return
    const picked = this.#pick(ctx)
    const bundlesChanged = !sameBundles(this.#bundles, ctx.bundles)
    this.#bundles = ctx.bundles
    if (picked instanceof SpiffeError) {
      // The identity we were told to use is gone from the workload's entries.
      this.#drop(picked)
      return
    }
    const svidChanged = !picked.equals(this.#svid)
    // An unchanged SVID keeps its object, so holders can compare by identity.
    if (svidChanged) this.#svid = picked
    this.#lastError = undefined
    if (svidChanged) this.#scheduleExpiry(picked)
    const wasReady = this.#status === 'ready'
    this.#setStatus(this.svid === undefined ? 'not-ready' : 'ready')
    if (svidChanged || bundlesChanged || !wasReady) {
      this.#updates++
      this.#notify()
    }
  }

  #pick(ctx: X509Context): X509Svid | SpiffeError {
    const { hint, spiffeId } = this.#select
    // Duplicate hints: the first wins (WL API §5.2.1).
    const found = ctx.svids.find(
      (s) =>
        (hint === undefined || s.hint === hint) && (spiffeId === undefined || s.id.toString() === spiffeId),
    )
    if (found !== undefined) return found
    const wanted = [hint === undefined ? '' : `hint "${hint}"`, spiffeId ?? ''].filter(Boolean).join(' and ')
    const offered = ctx.svids
      .map((s) => (s.hint === '' ? s.id.toString() : `${s.id} (hint "${s.hint}")`))
      .join(', ')
    return new SpiffeError(
      'SPIFFE_WLAPI_SVID_NOT_FOUND',
      `no SVID with ${wanted}; the Workload API offers ${offered}`,
    )
  }

  #failed(err: SpiffeError, fatal: boolean): void {
    if (this.#status === 'closed') return
    this.#lastError = err
    if (fatal) {
      this.#fatal = err
      this.#svid = undefined
      clearTimeout(this.#expiryTimer)
      this.#setStatus('failed')
    } else if (err.code === 'SPIFFE_WLAPI_NO_IDENTITY') {
      // PERMISSION_DENIED: revoked (or not yet registered). Stop presenting it.
      this.#drop(err)
      return
    }
    for (const l of this.#errorListeners) l(err)
    this.#notify()
  }

  #drop(err: SpiffeError): void {
    this.#lastError = err
    const had = this.#svid !== undefined
    this.#svid = undefined
    clearTimeout(this.#expiryTimer)
    this.#setStatus(this.#status === 'starting' ? 'starting' : 'not-ready')
    for (const l of this.#errorListeners) l(err)
    if (had) this.#updates++
    this.#notify()
  }

  #scheduleExpiry(svid: X509Svid): void {
    clearTimeout(this.#expiryTimer)
    const delay = svid.notAfter.getTime() - this.#now() + 1
    if (delay > MAX_TIMER_MS) return
    this.#expiryTimer = setTimeout(
      () => {
        if (this.#svid !== svid) return
        this.#lastError = new SpiffeError(
          'SPIFFE_WLAPI_NO_IDENTITY',
          `X.509-SVID ${svid.id} expired at ${svid.notAfter.toISOString()} with no renewal`,
          { reason: 'SVID_EXPIRED' },
        )
        this.#setStatus('not-ready')
        for (const l of this.#errorListeners) l(this.#lastError)
        this.#notify()
      },
      Math.max(0, delay),
    )
    // An expiry timer alone must not keep a process alive.
    this.#expiryTimer.unref()
  }

  #setStatus(status: SourceStatus): void {
    this.#status = status
  }

  #notify(): void {
    for (const wake of [...this.#waiters]) wake()
    for (const l of this.#listeners) {
      try {
        l(this)
      } catch {
        // A listener's bug must not stop others from seeing the update.
      }
    }
  }
}

function sameBundles(a: BundleSet<X509Bundle>, b: BundleSet<X509Bundle>): boolean {
  if (a.size !== b.size) return false
  for (const bundle of b) if (!bundle.equals(a.get(bundle.trustDomain))) return false
  return true
}
