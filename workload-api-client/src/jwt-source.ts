/**
 * JWT-SVIDs and JWT bundles from the Workload API. Bundles follow a
 * FetchJWTBundles watch; tokens are fetched per (identity, audience set),
 * cached, and fetched again once past half their life, as SPIRE's agent
 * does for its own cache (SPIRE `pkg/agent/manager/cache`). Concurrent requests for the same
 * token share one RPC.
 */
import { BundleSet } from './bundle-set.ts'
import { audienceList, type WorkloadApiClient } from './client.ts'
import { SpiffeError } from './errors.ts'
import type { JwtBundle, JwtBundleSource } from './jwt-bundle.ts'
import { JwtSvid, type JwtSvidValidateOptions } from './jwt-svid.ts'
import { type SourceClientOptions, sourceClient } from './source-client.ts'
import type { TrustDomain } from './spiffe-id.ts'
import type { Watch } from './watch.ts'

export interface JwtSourceOptions extends SourceClientOptions {
  /** Pick the token of the identity with this hint when the workload has several. */
  hint?: string
  now?: () => number
}

export interface JwtFetchParams {
  audience: string | readonly string[]
  spiffeId?: string
}

const CACHE_LIMIT = 256

export class JwtSource implements JwtBundleSource {
  readonly #client: WorkloadApiClient
  readonly #ownsClient: boolean
  readonly #hint: string | undefined
  readonly #now: () => number
  readonly #watch: Watch
  readonly #cache = new Map<string, JwtSvid>()
  readonly #inflight = new Map<string, Promise<JwtSvid>>()
  readonly #waiters = new Set<() => void>()
  #bundles: BundleSet<JwtBundle> | undefined
  #lastError: SpiffeError | undefined
  #fatal: SpiffeError | undefined
  #closed = false

  constructor(options: JwtSourceOptions = {}) {
    const { client, owned } = sourceClient(options)
    this.#client = client
    this.#ownsClient = owned
    this.#hint = options.hint
    this.#now = options.now ?? Date.now
    this.#watch = this.#client.watchJwtBundles({
      onUpdate: (bundles) => {
        this.#bundles = bundles
        this.#lastError = undefined
        this.#wake()
      },
      onError: (err, info) => {
        this.#lastError = err
        if (info.fatal) this.#fatal = err
        this.#wake()
      },
    })
  }

  /** Opens a source and waits for the first JWT bundles (default 30 s). */
  static async create(options: JwtSourceOptions & { timeoutMs?: number } = {}): Promise<JwtSource> {
    const source = new JwtSource(options)
    try {
      await source.waitReady(options.timeoutMs ?? 30_000)
    } catch (err) {
      source.close()
      throw err
    }
    return source
  }

  get ready(): boolean {
    return this.#bundles !== undefined && !this.#closed
  }

  get bundles(): BundleSet<JwtBundle> {
    return this.#bundles ?? new BundleSet()
  }

  get lastError(): SpiffeError | undefined {
    return this.#lastError
  }

  /**
   * The JWT bundle of `trustDomain`; throws SPIFFE_WLAPI_CLOSED after close(): the keys held then are
   * frozen and may include one revoked since (go-spiffe's source errs the same way).
   */
  getJwtBundleForTrustDomain(trustDomain: TrustDomain): JwtBundle | undefined {
    if (this.#closed) throw new SpiffeError('SPIFFE_WLAPI_CLOSED', 'JwtSource is closed')
    return this.#bundles?.get(trustDomain)
  }

  waitReady(timeoutMs?: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.ready) return finish(resolve)
        if (this.#fatal !== undefined) return finish(() => reject(this.#fatal))
        if (this.#closed)
          return finish(() => reject(new SpiffeError('SPIFFE_WLAPI_CLOSED', 'JwtSource closed')))
      }
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(
              () =>
                finish(() =>
                  reject(
                    new SpiffeError(
                      'SPIFFE_WLAPI_TIMEOUT',
                      `no JWT bundles within ${timeoutMs} ms (${this.#lastError?.message ?? 'no update arrived'})`,
                    ),
                  ),
                ),
              timeoutMs,
            )
      const finish = (settle: () => void) => {
        clearTimeout(timer)
        this.#waiters.delete(check)
        settle()
      }
      this.#waiters.add(check)
      check()
    })
  }

  /**
   * A JWT-SVID for the audience: the cached one while it is before its
   * half-life, otherwise a fresh one. If the refresh fails but the cached
   * token is still valid, the cached token is returned.
   */
  async fetchJwtSvid(params: JwtFetchParams): Promise<JwtSvid> {
    if (this.#closed) throw new SpiffeError('SPIFFE_WLAPI_CLOSED', 'JwtSource is closed')
    const audience = [...audienceList(params.audience)].sort()
    const key = `${params.spiffeId ?? ''}\n${this.#hint ?? ''}\n${audience.join('\n')}`
    const cached = this.#cache.get(key)
    const now = this.#now()
    if (cached !== undefined && now < cached.halfLifeAt().getTime()) return cached
    let pending = this.#inflight.get(key)
    if (pending === undefined) {
      pending = this.#fetch(params, audience).finally(() => this.#inflight.delete(key))
      this.#inflight.set(key, pending)
    }
    try {
      const svid = await pending
      if (this.#cache.size >= CACHE_LIMIT && !this.#cache.has(key)) {
        const oldest = this.#cache.keys().next()
        if (oldest.done !== true) this.#cache.delete(oldest.value)
      }
      this.#cache.set(key, svid)
      return svid
    } catch (err) {
      if (cached !== undefined && this.#now() < cached.expiry.getTime()) return cached
      throw err
    }
  }

  async #fetch(params: JwtFetchParams, audience: readonly string[]): Promise<JwtSvid> {
    const svids = await this.#client.fetchJwtSvids({
      audience,
      ...(params.spiffeId === undefined ? {} : { spiffeId: params.spiffeId }),
    })
    if (this.#hint === undefined) return svids[0] as JwtSvid
    const found = svids.find((s) => s.hint === this.#hint)
    if (found === undefined) {
      throw new SpiffeError('SPIFFE_WLAPI_SVID_NOT_FOUND', `no JWT-SVID with hint "${this.#hint}"`)
    }
    return found
  }

  /** Validates a token locally against the JWT bundles held (own and federated). */
  validate(
    token: string,
    audience: string | readonly string[],
    options: JwtSvidValidateOptions = {},
  ): JwtSvid {
    return JwtSvid.parseAndValidate(token, this, audience, { now: new Date(this.#now()), ...options })
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#watch.close()
    if (this.#ownsClient) this.#client.close()
    this.#cache.clear()
    this.#bundles = undefined
    this.#wake()
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w()
  }
}
