/**
 * A foreign trust domain's bundle, kept fresh from its bundle endpoint
 * (SPIFFE_Federation.md §4.1, §4.2, §6.2).
 *
 * - Polls every `spiffe_refresh_hint` seconds, bounded by minRefreshMs and
 *   maxRefreshMs, five minutes when the bundle gives none (§4.1).
 * - A failed poll (unreachable, refused TLS identity, malformed or oversized
 *   document) keeps the last good bundle, is reported to onError listeners,
 *   and is retried after a backoff that starts at minRefreshMs, doubles, and
 *   never exceeds the regular interval: §6.2 asks clients not to retry
 *   aggressively, and waiting longer than a poll would only delay recovery.
 * - `spiffe_sequence` never goes backwards: a fetched bundle whose sequence
 *   is lower than that of the previous fetched one is refused as
 *   SPIFFE_BUNDLE_INVALID / SEQUENCE_REGRESSED and the held bundle kept,
 *   since a lower number means a stale copy (a lagging replica or cache),
 *   and rolling back would bring back revoked keys (§4.2: the sequence
 *   orders bundles). An equal sequence is accepted (nothing changed, or the
 *   same state re-served). A bundle without a sequence is accepted: §4.2
 *   then takes the most recently retrieved one as current. The configured
 *   initial bundle is not compared: §4.2 lets a locally set bundle be
 *   replaced by the next refresh, whatever its number.
 * - For a self-serving `https_spiffe` endpoint, the SVID is verified with
 *   the configured initial bundle until the first fetch, then with the
 *   latest fetched one (§5.2.2.4).
 */
import { SpiffeError } from '../errors.ts'
import type { BackoffStrategy } from '../internal/backoff.ts'
import { DoublingBackoff } from '../internal/doubling-backoff.ts'
import type { JwtBundle, JwtBundleSource } from '../jwt-bundle.ts'
import type { SpiffeBundle } from '../spiffe-bundle.ts'
import type { TrustDomain } from '../spiffe-id.ts'
import { SYSTEM_CLOCK, type WatchClock } from '../watch.ts'
import type { X509Bundle, X509BundleSource } from '../x509-bundle.ts'
import { type BundleEndpoint, type ResolvedEndpoint, resolveEndpoint } from './endpoint.ts'
import { fetchResolved } from './fetch.ts'

export const DEFAULT_BUNDLE_REFRESH_MS = 5 * 60_000
export const DEFAULT_MIN_BUNDLE_REFRESH_MS = 10_000
export const DEFAULT_MAX_BUNDLE_REFRESH_MS = 60 * 60_000

export interface FederatedBundleSourceOptions {
  endpoint: BundleEndpoint
  /**
   * The foreign trust domain's bundle as configured out of band (say from
   * `spire-server bundle show -format spiffe`). Required for a self-serving
   * `https_spiffe` endpoint: it authenticates the first connection. Served
   * by the source until the first fetch succeeds.
   */
  initialBundle?: SpiffeBundle
  /**
   * `https_spiffe` with an endpoint ID in another trust domain (not
   * self-serving): the bundles that authenticate it (§5.2.2.2).
   */
  endpointBundles?: X509BundleSource
  /** Poll interval when the bundle has no `spiffe_refresh_hint`. Default 5 min. */
  defaultRefreshMs?: number
  /** Lower bound on the poll interval and the first retry delay. Default 10 s. */
  minRefreshMs?: number
  /** Upper bound on the poll interval, whatever the hint. Default 1 h. */
  maxRefreshMs?: number
  /** Delays after failures (capped at the poll interval). Default: minRefreshMs, doubling. */
  backoff?: BackoffStrategy
  /** Per fetch. Default 10 s. */
  timeoutMs?: number
  /** Default MAX_BUNDLE_BYTES (1 MiB). */
  maxBytes?: number
  /** Time as the source sees it; tests drive refreshes with their own. */
  clock?: WatchClock
}

/** Receives each newly accepted bundle (not a re-fetch of the same one). */
export type FederatedBundleListener = (bundle: SpiffeBundle) => void
/** Receives each failed poll and the wait before the next attempt; the held bundle is unchanged. */
export type FederatedBundleErrorListener = (err: SpiffeError, info: { retryInMs: number }) => void

/**
 * One foreign trust domain's SPIFFE bundle, polled from its bundle endpoint:
 * an X509BundleSource and JwtBundleSource for that trust domain only (never
 * merged with another trust domain's bundle, §4.2). See the module comment
 * for the refresh, backoff and sequence rules.
 */
export class FederatedBundleSource implements X509BundleSource, JwtBundleSource {
  readonly trustDomain: TrustDomain
  readonly #endpoint: ResolvedEndpoint
  readonly #options: FederatedBundleSourceOptions
  readonly #clock: WatchClock
  readonly #backoff: BackoffStrategy
  readonly #abort = new AbortController()
  readonly #updateListeners = new Set<FederatedBundleListener>()
  readonly #errorListeners = new Set<FederatedBundleErrorListener>()
  #bundle: SpiffeBundle | undefined
  #fetched = false
  #lastError: SpiffeError | undefined
  #nextRefreshInMs: number | undefined
  #attempts = 0
  #firstFetch: { resolve: () => void; promise: Promise<void> }

  /** Starts polling at once; the first fetch runs immediately. */
  constructor(options: FederatedBundleSourceOptions) {
    this.#endpoint = resolveEndpoint(options.endpoint)
    this.trustDomain = this.#endpoint.trustDomain
    this.#options = options
    this.#clock = options.clock ?? SYSTEM_CLOCK
    const min = options.minRefreshMs ?? DEFAULT_MIN_BUNDLE_REFRESH_MS
    const max = options.maxRefreshMs ?? DEFAULT_MAX_BUNDLE_REFRESH_MS
    const def = options.defaultRefreshMs ?? DEFAULT_BUNDLE_REFRESH_MS
    for (const [name, v] of [
      ['minRefreshMs', min],
      ['maxRefreshMs', max],
      ['defaultRefreshMs', def],
    ] as const) {
      if (!Number.isFinite(v) || v <= 0) {
        throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', `${name} must be a positive number, got ${v}`)
      }
    }
    if (max < min)
      throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', 'maxRefreshMs must be at least minRefreshMs')
    this.#backoff = options.backoff ?? new DoublingBackoff(min)
    const initial = options.initialBundle
    if (initial !== undefined && !initial.trustDomain.equals(this.trustDomain)) {
      throw new SpiffeError(
        'SPIFFE_ARGUMENT_INVALID',
        `initialBundle is for "${initial.trustDomain}", not "${this.trustDomain}"`,
      )
    }
    const id = this.#endpoint.endpointSpiffeId
    if (id?.trustDomain.equals(this.trustDomain) && initial === undefined) {
      throw new SpiffeError(
        'SPIFFE_ARGUMENT_INVALID',
        `the https_spiffe endpoint ${id} serves its own trust domain's bundle: initialBundle is required to authenticate it`,
      )
    }
    if (
      id !== undefined &&
      !id.trustDomain.equals(this.trustDomain) &&
      options.endpointBundles === undefined
    ) {
      throw new SpiffeError(
        'SPIFFE_ARGUMENT_INVALID',
        `the https_spiffe endpoint ${id} is in another trust domain: endpointBundles is required to authenticate it`,
      )
    }
    this.#bundle = initial
    let resolve = (): void => {}
    const promise = new Promise<void>((r) => {
      resolve = r
    })
    this.#firstFetch = { resolve, promise }
    void this.#run()
  }

  /** The bundle held now: the latest good fetch, else the initial bundle. */
  get bundle(): SpiffeBundle | undefined {
    return this.#bundle
  }

  /** True once a fetch has succeeded. */
  get fetched(): boolean {
    return this.#fetched
  }

  /** Why the last attempt failed; cleared by a success. */
  get lastError(): SpiffeError | undefined {
    return this.#lastError
  }

  /** Attempts made so far, good or bad. */
  get attempts(): number {
    return this.#attempts
  }

  /** The wait scheduled after the last attempt, in ms. */
  get nextRefreshInMs(): number | undefined {
    return this.#nextRefreshInMs
  }

  getX509BundleForTrustDomain(trustDomain: TrustDomain): X509Bundle | undefined {
    return trustDomain.equals(this.trustDomain) ? this.#bundle?.x509 : undefined
  }

  getJwtBundleForTrustDomain(trustDomain: TrustDomain): JwtBundle | undefined {
    return trustDomain.equals(this.trustDomain) ? this.#bundle?.jwt : undefined
  }

  /** Called with each newly accepted bundle. Returns an unsubscribe function. */
  onUpdate(listener: FederatedBundleListener): () => void {
    this.#updateListeners.add(listener)
    return () => this.#updateListeners.delete(listener)
  }

  /** Called with each failed attempt and the delay before the next one. */
  onError(listener: FederatedBundleErrorListener): () => void {
    this.#errorListeners.add(listener)
    return () => this.#errorListeners.delete(listener)
  }

  /**
   * Resolves once a fetch has succeeded; rejects with the last error after
   * `timeoutMs` (real time), or SPIFFE_WLAPI_CLOSED on close().
   */
  async waitFetched(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#fetched) return
    if (this.#abort.signal.aborted) throw closed()
    const timeoutMs = options.timeoutMs ?? 30_000
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            this.#lastError ??
              new SpiffeError(
                'SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE',
                `no bundle from the endpoint of "${this.trustDomain}" within ${timeoutMs} ms`,
                { reason: 'TIMEOUT' },
              ),
          ),
        timeoutMs,
      )
    })
    let onAbort = (): void => {}
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(closed())
      this.#abort.signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      await Promise.race([this.#firstFetch.promise, timeout, aborted])
    } finally {
      clearTimeout(timer)
      this.#abort.signal.removeEventListener('abort', onAbort)
    }
  }

  /** Stops polling and aborts a fetch in flight. The held bundle stays readable. Idempotent. */
  close(): void {
    this.#abort.abort()
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal
    while (!signal.aborted) {
      this.#attempts++
      let delay: number
      try {
        const bundle = await fetchResolved(this.#endpoint, {
          endpointBundles: this.#options.endpointBundles ?? this,
          signal,
          ...(this.#options.timeoutMs === undefined ? {} : { timeoutMs: this.#options.timeoutMs }),
          ...(this.#options.maxBytes === undefined ? {} : { maxBytes: this.#options.maxBytes }),
        })
        if (signal.aborted) return
        this.#accept(bundle)
        this.#backoff.reset()
        delay = this.#interval()
        this.#nextRefreshInMs = delay
      } catch (err) {
        if (signal.aborted) return
        const error =
          err instanceof SpiffeError
            ? err
            : new SpiffeError('SPIFFE_BUNDLE_ENDPOINT_UNAVAILABLE', String(err), {
                reason: 'NETWORK',
                cause: err,
              })
        delay = Math.min(this.#backoff.next(), this.#interval())
        this.#nextRefreshInMs = delay
        this.#lastError = error
        for (const listener of this.#errorListeners) safely(() => listener(error, { retryInMs: delay }))
      }
      await this.#clock.sleep(delay, signal)
    }
  }

  #accept(bundle: SpiffeBundle): void {
    const held = this.#bundle
    if (this.#fetched && held?.sequence !== undefined && bundle.sequence !== undefined) {
      if (bundle.sequence < held.sequence) {
        throw new SpiffeError(
          'SPIFFE_BUNDLE_INVALID',
          `bundle endpoint of "${this.trustDomain}" served spiffe_sequence ${bundle.sequence}, lower than the ${held.sequence} already held; keeping the held bundle`,
          { reason: 'SEQUENCE_REGRESSED' },
        )
      }
    }
    this.#bundle = bundle
    this.#lastError = undefined
    const first = !this.#fetched
    this.#fetched = true
    if (first) this.#firstFetch.resolve()
    if (held !== undefined && sameBundle(held, bundle)) return
    for (const listener of this.#updateListeners) safely(() => listener(bundle))
  }

  #interval(): number {
    const min = this.#options.minRefreshMs ?? DEFAULT_MIN_BUNDLE_REFRESH_MS
    const max = this.#options.maxRefreshMs ?? DEFAULT_MAX_BUNDLE_REFRESH_MS
    const hint = this.#bundle?.refreshHintSeconds
    const wanted =
      hint === undefined ? (this.#options.defaultRefreshMs ?? DEFAULT_BUNDLE_REFRESH_MS) : hint * 1000
    return Math.min(max, Math.max(min, wanted))
  }
}

function sameBundle(a: SpiffeBundle, b: SpiffeBundle): boolean {
  return a.toJson() === b.toJson()
}

function closed(): SpiffeError {
  return new SpiffeError('SPIFFE_WLAPI_CLOSED', 'the federated bundle source was closed')
}

// A throwing listener must not stop the polling loop.
function safely(fn: () => void): void {
  try {
    fn()
  } catch {
    // The listener's own failure is its business.
  }
}
