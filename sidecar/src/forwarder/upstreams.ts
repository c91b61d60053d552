/**
 * One undici Pool per upstream, keep-alive on. Upstreams that are peer
 * sidecars connect through ClientTls; when the identity rotates their pool is
 * replaced and the old one closed gracefully, so requests in flight (an SSE
 * stream, a long upload) finish on the connection they started on while
 * every new request uses a connection made with the new SVID. The same
 * happens when a peer's certificate on a kept-alive connection expires.
 */
import { readFileSync } from 'node:fs'
import type { Duplex } from 'node:stream'
import { buildConnector, Pool } from 'undici'
import { SpiffeId } from 'workload-api-client'
import { SvidecarError } from '../errors/index.ts'
import type { Identity } from '../identity/identity.ts'
import { type AuthorizerSpec, authorizerFromSpec, exactIdOf } from '../tls/authorizer.ts'
import { ClientTls } from '../tls/client-tls.ts'
import { httpsConnector } from '../tls/https-connector.ts'
import { type TlsProfile, tlsParameters } from '../tls/profiles.ts'
import { withContinueFilter } from './unsolicited-continue.ts'

// How long before a peer certificate's NotAfter its connections stop taking requests: a timer fires late on a
// busy event loop, and a request dispatched just before the expiry still has to reach the peer. The renewed pool's
// connections handshake in full: the library resumes no session whose certificate has less than 5 s left.
const EXPIRY_MARGIN_MS = 1000

export type UpstreamKind = 'spiffe' | 'https' | 'plaintext'

export interface UpstreamSpec {
  name: string
  url: URL
  kind: UpstreamKind
  spiffe?: AuthorizerSpec
  caFile?: string
  /** Overrides PoolLimits.tlsProfile for this upstream. */
  tlsProfile?: TlsProfile
}

export interface PoolLimits {
  connectTimeoutMs: number
  idleTimeoutMs: number
  /** 0 = none: streams may last for hours. */
  requestTimeoutMs: number
  minVersion: 'TLSv1.2' | 'TLSv1.3'
  /** Default intermediate. */
  tlsProfile?: TlsProfile
}

export class Upstream {
  readonly name: string
  readonly url: URL
  readonly kind: UpstreamKind
  /** Prefix of every forwarded path (the URL's path without its trailing slash). */
  readonly basePath: string
  /** The mTLS connector, for upstreams that are peer sidecars. */
  readonly clientTls: ClientTls | undefined
  /** A peer sidecar's SPIFFE ID when its authorizer admits exactly one: the only ID a connection can reach. */
  readonly peerId: SpiffeId | undefined
  // The TLS connector for pools and WebSocket clients alike: mTLS for peers, the profile's TLS for HTTPS APIs.
  readonly #connect: buildConnector.connector | undefined
  readonly #makePool: () => Pool
  #pool: Pool
  readonly #retired = new Set<Pool>()
  // When the current pool is renewed because a peer certificate on its connections expires, and the timer.
  #renewDue = Number.POSITIVE_INFINITY
  #expiryTimer: NodeJS.Timeout | undefined

  constructor(spec: UpstreamSpec, limits: PoolLimits, identity?: Identity) {
    this.name = spec.name
    this.url = spec.url
    this.kind = spec.kind
    this.basePath = spec.url.pathname === '/' ? '' : spec.url.pathname.replace(/\/$/, '')
    const exact = spec.kind === 'spiffe' && spec.spiffe !== undefined ? exactIdOf(spec.spiffe) : undefined
    this.peerId = exact === undefined ? undefined : SpiffeId.parse(exact)
    if (spec.kind === 'spiffe') {
      if (identity === undefined) {
        throw new SvidecarError('SVD_CONFIG_INVALID', `upstream ${spec.name} needs an identity for mTLS`)
      }
      this.clientTls = new ClientTls(identity, {
        upstream: spec.name,
        authorizer: authorizerFromSpec(spec.spiffe ?? { any: true }),
        params: tlsParameters(spec.tlsProfile ?? limits.tlsProfile ?? 'intermediate', limits.minVersion),
        connectTimeoutMs: limits.connectTimeoutMs,
        onPeerValidUntil: (untilMs) => this.#renewAt(untilMs),
      })
    }
    if (spec.kind === 'https') {
      if (identity === undefined) {
        throw new SvidecarError(
          'SVD_CONFIG_INVALID',
          `upstream ${spec.name} needs an identity to fail closed on`,
        )
      }
      this.#connect = httpsConnector(identity, {
        upstream: spec.name,
        params: tlsParameters(spec.tlsProfile ?? limits.tlsProfile ?? 'intermediate', limits.minVersion),
        ...(spec.caFile === undefined ? {} : { ca: readFileSync(spec.caFile, 'utf8') }),
        connectTimeoutMs: limits.connectTimeoutMs,
      })
    } else this.#connect = this.clientTls?.connect as buildConnector.connector | undefined
    const connect = this.#connect
    this.#makePool = () => createPool(spec, limits, connect)
    this.#pool = this.#makePool()
  }

  /** node:http's createConnection for this upstream (TLS upstreams only), e.g. for a WebSocket client. */
  createConnection():
    | ((options: object, cb: (err: Error | null, socket: Duplex) => void) => undefined)
    | undefined {
    const connect = this.#connect
    if (connect === undefined) return undefined
    return (options, cb) => {
      const o = options as { host?: string; hostname?: string; port?: number | string; servername?: string }
      connect(
        {
          hostname: o.hostname ?? o.host ?? this.url.hostname,
          protocol: 'https:',
          port: String(o.port ?? this.url.port),
          ...(o.servername === undefined ? {} : { servername: o.servername }),
        },
        (err, socket) => cb(err, socket as Duplex),
      )
      return undefined
    }
  }

  get pool(): Pool {
    return this.#pool
  }

  /**
   * A peer sidecar's certificate on one of the pool's connections is valid until `untilMs`; Node never checks it
   * again on a kept-alive connection (security.md 1), so the pool is renewed a little before, and the next
   * requests handshake with the peer's current SVID (renewed at half its lifetime, long before).
   */
  #renewAt(untilMs: number): void {
    // A quarter of what is left when that is less than the margin: a peer about to expire is not renewed in a loop.
    const due = untilMs - Math.min(EXPIRY_MARGIN_MS, Math.max(0, (untilMs - Date.now()) / 4))
    if (due >= this.#renewDue) return
    this.#renewDue = due
    this.#armRenewal()
  }

  #armRenewal(): void {
    clearTimeout(this.#expiryTimer)
    // setTimeout stores delays in 32 bits; a later time is armed again when this fires.
    const delay = Math.min(Math.max(0, this.#renewDue - Date.now()), 2 ** 31 - 1)
    this.#expiryTimer = setTimeout(() => {
      if (Date.now() >= this.#renewDue) this.renew()
      else this.#armRenewal()
    }, delay)
    this.#expiryTimer.unref()
  }

  /** New requests go to a new pool; the old one finishes what it has and closes. */
  renew(): void {
    clearTimeout(this.#expiryTimer)
    this.#renewDue = Number.POSITIVE_INFINITY
    const old = this.#pool
    this.#pool = this.#makePool()
    this.#retired.add(old)
    old.close().finally(() => this.#retired.delete(old))
  }

  async close(): Promise<void> {
    clearTimeout(this.#expiryTimer)
    await Promise.all([this.#pool.close(), ...[...this.#retired].map((p) => p.close())])
  }

  async destroy(): Promise<void> {
    clearTimeout(this.#expiryTimer)
    await Promise.all([this.#pool.destroy(), ...[...this.#retired].map((p) => p.destroy())])
  }
}

export class Upstreams {
  readonly #byName = new Map<string, Upstream>()
  readonly #unsubscribe: () => void

  constructor(identity: Identity, specs: Iterable<UpstreamSpec>, limits: PoolLimits) {
    let generation = identity.current()?.generation
    for (const spec of specs) this.#byName.set(spec.name, new Upstream(spec, limits, identity))
    this.#unsubscribe = identity.onChange((snapshot) => {
      if (snapshot === undefined || snapshot.generation === generation) return
      generation = snapshot.generation
      for (const upstream of this.#byName.values()) if (upstream.kind === 'spiffe') upstream.renew()
    })
  }

  get(name: string): Upstream | undefined {
    return this.#byName.get(name)
  }

  async close(): Promise<void> {
    this.#unsubscribe()
    await Promise.all([...this.#byName.values()].map((u) => u.close()))
  }

  async destroy(): Promise<void> {
    this.#unsubscribe()
    await Promise.all([...this.#byName.values()].map((u) => u.destroy()))
  }
}

function createPool(
  spec: UpstreamSpec,
  limits: PoolLimits,
  connect: buildConnector.connector | undefined,
): Pool {
  const common = {
    keepAliveTimeout: limits.idleTimeoutMs,
    keepAliveMaxTimeout: limits.idleTimeoutMs,
    headersTimeout: limits.requestTimeoutMs === 0 ? 300_000 : limits.requestTimeoutMs,
    // Idle time between body chunks; an SSE stream may be quiet for minutes, so only an explicit limit applies.
    bodyTimeout: limits.requestTimeoutMs,
    connectTimeout: limits.connectTimeoutMs,
    // A proxy must not pipeline: one request per connection at a time keeps failures attributable.
    pipelining: 1,
  }
  // Every connection gets the 100-Continue filter; plaintext upstreams use undici's own connector, built as Pool would.
  const base = connect ?? buildConnector({ timeout: limits.connectTimeoutMs })
  return new Pool(spec.url.origin, { ...common, connect: withContinueFilter(base) })
}
