/**
 * `engine: opa`: decisions from an Open Policy Agent server, asked over HTTP
 * (`POST /v1/data/<package path>` with `{"input": ...}`, OPA's Data API).
 *
 * The engine fails closed: no answer within the deadline, a connection
 * error, a status other than 200, or an answer that is not the documented
 * decision document (result.ts) denies, with a reason naming the failure.
 * Good answers are cached (a bounded LRU keyed by the input document, with a
 * TTL); failures never are, so the next request asks again. Identical
 * requests in flight at the same time share one call.
 */
import { Pool } from 'undici'
import { SvidecarError } from '../../errors/svidecar-error.ts'
import type { PolicyDecision, PolicyEngine, PolicyRequest } from '../engine.ts'
import { DecisionCache } from './cache.ts'
import { opaInput } from './input.ts'
import { decisionFromResult, failClosed, OPA_ENGINE, refusedLocally } from './result.ts'

export interface OpaEngineOptions {
  /** The OPA server's base URL, `http://host:port` (or https), without credentials, query or path. */
  readonly url: string
  /** The Rego package whose document is the decision, e.g. `svidecar.authz` (asked at /v1/data/svidecar/authz). */
  readonly package: string
  /** How long one decision may take, connection included, before it is denied. Default 50 ms. */
  readonly timeoutMs?: number
  /** Decision cache. Default 10,000 entries for 1,000 ms each; 0 for either turns it off. */
  readonly cache?: { readonly maxEntries?: number; readonly ttlMs?: number }
  /** Connections kept open to the server. Default 4. */
  readonly connections?: number
  /** A bearer token for OPA's token authentication; sent, never reported. */
  readonly token?: string
  /** The clock the cache's TTL reads (tests inject one). */
  readonly now?: () => number
}

export const OPA_DEFAULTS = {
  timeoutMs: 50,
  cacheEntries: 10_000,
  cacheTtlMs: 1_000,
  connections: 4,
} as const

/** Inputs larger than this are asked every time: they would make the cache's memory unbounded. */
const MAX_CACHED_KEY = 16 * 1024
/** OPA's answer is a small object; anything larger is not one. */
const MAX_RESPONSE = 64 * 1024
const PACKAGE = /^[A-Za-z_][A-Za-z0-9_]*(?:[./][A-Za-z_][A-Za-z0-9_]*)*$/

function invalid(message: string): SvidecarError {
  return new SvidecarError('SVD_CONFIG_INVALID', `engine opa: ${message}`)
}

function positive(name: string, v: number | undefined, fallback: number, min: number): number {
  if (v === undefined) return fallback
  if (!Number.isInteger(v) || v < min) throw invalid(`${name} must be an integer >= ${min}`)
  return v
}

export class OpaEngine implements PolicyEngine {
  readonly name = OPA_ENGINE
  /** Where decisions are asked, for logs: origin and path, never a credential. */
  readonly endpoint: string
  readonly #pool: Pool
  readonly #path: string
  readonly #timeoutMs: number
  readonly #headers: Record<string, string>
  readonly #cache: DecisionCache<PolicyDecision>
  readonly #inflight = new Map<string, Promise<PolicyDecision>>()

  constructor(options: OpaEngineOptions) {
    let url: URL
    try {
      url = new URL(options.url)
    } catch {
      throw invalid('url is not a URL')
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('url must be http: or https:')
    if (url.username !== '' || url.password !== '')
      throw invalid('url must not carry credentials (use token)')
    if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
      throw invalid('url must be an origin (scheme, host, port) without path, query or fragment')
    }
    if (!PACKAGE.test(options.package))
      throw invalid('package must be a Rego package path such as svidecar.authz')
    this.#timeoutMs = positive('timeoutMs', options.timeoutMs, OPA_DEFAULTS.timeoutMs, 1)
    const entries = positive('cache.maxEntries', options.cache?.maxEntries, OPA_DEFAULTS.cacheEntries, 0)
    const ttl = positive('cache.ttlMs', options.cache?.ttlMs, OPA_DEFAULTS.cacheTtlMs, 0)
    const connections = positive('connections', options.connections, OPA_DEFAULTS.connections, 1)
    this.#path = `/v1/data/${options.package.replaceAll('.', '/')}`
    this.endpoint = `${url.origin}${this.#path}`
    this.#headers = { 'content-type': 'application/json', accept: 'application/json' }
    if (options.token !== undefined) {
      // A header value cannot hold CR, LF or non-ASCII; say so now, not per request.
      if (!/^[\x21-\x7e]+$/.test(options.token)) throw invalid('token must be printable ASCII without spaces')
      this.#headers.authorization = `Bearer ${options.token}`
    }
    this.#cache = new DecisionCache(entries, ttl, options.now ?? Date.now)
    this.#pool = new Pool(url.origin, { connections, pipelining: 1 })
  }

  decide(request: PolicyRequest): PolicyDecision | Promise<PolicyDecision> {
    const input = opaInput(request)
    if (typeof input === 'string') return refusedLocally(input)
    let key: string
    try {
      key = JSON.stringify(input)
    } catch {
      // A BigInt or a cycle among the attributes a lens set: nothing OPA could be asked about.
      return refusedLocally('the request attributes cannot be sent as JSON')
    }
    const cached = this.#cache.get(key)
    if (cached !== undefined) return cached
    const pending = this.#inflight.get(key)
    if (pending !== undefined) return pending
    const p = this.#ask(key, request)
      .catch(() => failClosed(`the request to ${this.endpoint} failed`))
      .finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, p)
    return p
  }

  /** Closes the connections to the server; decisions asked afterwards deny. */
  async close(): Promise<void> {
    this.#cache.clear()
    await this.#pool.close()
  }

  async #ask(key: string, request: PolicyRequest): Promise<PolicyDecision> {
    const controller = new AbortController()
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      controller.abort()
    }, this.#timeoutMs)
    let status: number
    let text: string
    try {
      const res = await this.#pool.request({
        method: 'POST',
        path: this.#path,
        headers: this.#headers,
        body: `{"input":${key}}`,
        signal: controller.signal,
      })
      status = res.statusCode
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length
        if (size > MAX_RESPONSE) {
          res.body.destroy()
          return failClosed(`the response from ${this.endpoint} is larger than ${MAX_RESPONSE} bytes`)
        }
        chunks.push(chunk as Buffer)
      }
      text = Buffer.concat(chunks).toString('utf8')
    } catch (err) {
      if (timedOut) return failClosed(`no answer from ${this.endpoint} within ${this.#timeoutMs} ms`)
      const code = (err as { code?: unknown }).code
      return failClosed(
        `cannot ask ${this.endpoint}${typeof code === 'string' && /^[A-Z_]{2,40}$/.test(code) ? ` (${code})` : ''}`,
      )
    } finally {
      clearTimeout(timer)
    }
    if (status !== 200) return failClosed(`${this.endpoint} answered HTTP ${status}${opaErrorCode(text)}`)
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      return failClosed(`the response from ${this.endpoint} is not JSON`)
    }
    const d = decisionFromResult(body, request)
    if (typeof d === 'string') return failClosed(`malformed decision from ${this.endpoint}: ${d}`)
    if (key.length <= MAX_CACHED_KEY) this.#cache.set(key, d)
    return d
  }
}

/** OPA's error bodies carry a stable `code` (e.g. internal_error); its message may quote policy text, so only the code is kept. */
function opaErrorCode(text: string): string {
  try {
    const code = (JSON.parse(text) as { code?: unknown }).code
    return typeof code === 'string' && /^[a-z_]{1,40}$/.test(code) ? ` (${code})` : ''
  } catch {
    return ''
  }
}

export function createOpaEngine(options: OpaEngineOptions): OpaEngine {
  return new OpaEngine(options)
}
