/**
 * A SPIFFE bundle endpoint server (SPIFFE_Federation.md §5.2.1.3,
 * §5.2.2.3): answers GET on one path with the trust domain's current SPIFFE
 * bundle as UTF-8 JSON, asks nothing of its clients (no client certificate,
 * no authentication header: §5.2.x.3 forbid both), and presents either a
 * Web PKI certificate (`https_web`) or its own X509-SVID (`https_spiffe`),
 * switched on rotation without a restart.
 */
import type { ServerResponse } from 'node:http'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { SecureContextOptions } from 'node:tls'
import { SpiffeError } from '../errors.ts'
import { SpiffeBundle } from '../spiffe-bundle.ts'
import { TrustDomain } from '../spiffe-id.ts'
import type { X509Svid } from '../x509-svid.ts'

/** Where an `https_spiffe` server gets its SVID: an X509Source fits. */
export interface X509SvidProvider {
  getX509Svid(): X509Svid
  /** Called on every rotation; returns an unsubscribe function. */
  onUpdate?(listener: () => void): () => void
}

/** `https_web` with a certificate the caller gives, or `https_spiffe` with the current SVID of a source. */
export type BundleEndpointServerProfile =
  | {
      readonly type: 'https_web'
      /** PEM certificate chain and key; replace them later with setWebCertificate(). */
      readonly cert: string | Buffer
      readonly key: string | Buffer
    }
  | { readonly type: 'https_spiffe'; readonly svidSource: X509SvidProvider }

/** What the bundle endpoint server serves, how it authenticates itself, and where it listens. */
export interface BundleEndpointServerOptions {
  trustDomain: TrustDomain | string
  /**
   * The bundle to serve, asked on every request (undefined answers 503). Its
   * `spiffe_sequence`, when unset, is assigned here: see the class comment.
   */
  bundle: () => SpiffeBundle | undefined
  profile: BundleEndpointServerProfile
  /** Default `/`. */
  path?: string
  /** Default 127.0.0.1. */
  host?: string
  /** Default 0 (a free port). */
  port?: number
  /** `spiffe_refresh_hint` when the bundle has none. Default 300 (5 min, as SPIRE). */
  refreshHintSeconds?: number
}

export const DEFAULT_REFRESH_HINT_SECONDS = 300

/**
 * The server. A bundle without `spiffe_sequence` gets one: the time in
 * milliseconds at which its keys were first seen to change (at least the
 * previous value plus one), so the sequence only grows, across restarts
 * too, as long as the clock does not jump back; clients that refuse a lower
 * sequence (FederatedBundleSource does) then never see it fall.
 */
export class BundleEndpointServer {
  readonly trustDomain: TrustDomain
  readonly path: string
  readonly #server: Server
  readonly #options: BundleEndpointServerOptions
  #unsubscribe: (() => void) | undefined
  #lastKeys = ''
  #sequence = 0n
  #closed = false

  private constructor(options: BundleEndpointServerOptions, server: Server) {
    this.#options = options
    this.trustDomain =
      typeof options.trustDomain === 'string' ? TrustDomain.parse(options.trustDomain) : options.trustDomain
    this.path = options.path ?? '/'
    this.#server = server
  }

  static async start(options: BundleEndpointServerOptions): Promise<BundleEndpointServer> {
    if (options.path !== undefined && !options.path.startsWith('/')) {
      throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', `bundle endpoint path must start with "/"`)
    }
    const hint = options.refreshHintSeconds ?? DEFAULT_REFRESH_HINT_SECONDS
    if (!Number.isSafeInteger(hint) || hint < 0) {
      throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', 'refreshHintSeconds must be a non-negative integer')
    }
    const server = createServer({
      ...credentials(options.profile),
      // §5: Mozilla "intermediate" compatibility: TLS 1.2 and 1.3.
      minVersion: 'TLSv1.2',
      requestCert: false,
    })
    const endpoint = new BundleEndpointServer(options, server)
    server.on('request', (req, res) => endpoint.#answer(req.method ?? '', req.url ?? '', res))
    const profile = options.profile
    if (profile.type === 'https_spiffe' && profile.svidSource.onUpdate !== undefined) {
      endpoint.#unsubscribe = profile.svidSource.onUpdate(() => endpoint.#rotate())
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
    return endpoint
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port
  }

  /** `https://<host>:<port><path>`, IPv6 hosts bracketed. */
  get url(): string {
    const { address, port } = this.#server.address() as AddressInfo
    const host = address.includes(':') ? `[${address}]` : address
    return `https://${host}:${port}${this.path}`
  }

  /** Replaces the `https_web` certificate and key for new connections. */
  setWebCertificate(cert: string | Buffer, key: string | Buffer): void {
    if (this.#options.profile.type !== 'https_web') {
      throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', 'setWebCertificate is for the https_web profile')
    }
    this.#server.setSecureContext({ cert, key, minVersion: 'TLSv1.2' })
  }

  /** The document served now, with its assigned sequence and hint. */
  currentDocument(): string | undefined {
    const bundle = this.#options.bundle()
    if (bundle === undefined) return undefined
    if (!bundle.trustDomain.equals(this.trustDomain)) {
      throw new SpiffeError(
        'SPIFFE_ARGUMENT_INVALID',
        `the bundle endpoint of "${this.trustDomain}" was given the bundle of "${bundle.trustDomain}"`,
      )
    }
    const keys = SpiffeBundle.from(this.trustDomain, { x509: bundle.x509, jwt: bundle.jwt }).toJson()
    if (keys !== this.#lastKeys) {
      this.#lastKeys = keys
      const now = BigInt(Date.now())
      this.#sequence = now > this.#sequence ? now : this.#sequence + 1n
    }
    return SpiffeBundle.from(this.trustDomain, {
      x509: bundle.x509,
      jwt: bundle.jwt,
      sequence: bundle.sequence ?? this.#sequence,
      refreshHintSeconds:
        bundle.refreshHintSeconds ?? this.#options.refreshHintSeconds ?? DEFAULT_REFRESH_HINT_SECONDS,
    }).toJson()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#unsubscribe?.()
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
  }

  #rotate(): void {
    if (this.#closed) return
    try {
      this.#server.setSecureContext({ ...credentials(this.#options.profile), minVersion: 'TLSv1.2' })
    } catch {
      // No SVID right now (the source lost it): keep presenting the previous one until the next update.
    }
  }

  #answer(method: string, url: string, res: ServerResponse): void {
    const path = url.split('?')[0]
    if (path !== this.path) {
      plain(res, 404, 'not found')
      return
    }
    if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      plain(res, 405, 'method not allowed')
      return
    }
    let doc: string | undefined
    try {
      doc = this.currentDocument()
    } catch {
      doc = undefined
    }
    if (doc === undefined) {
      plain(res, 503, 'no bundle available yet')
      return
    }
    const body = Buffer.from(doc, 'utf8')
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': body.length,
      'cache-control': 'no-store',
    })
    res.end(method === 'HEAD' ? undefined : body)
  }
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' })
  res.end(`${text}\n`)
}

function credentials(profile: BundleEndpointServerProfile): SecureContextOptions {
  if (profile.type === 'https_web') return { cert: profile.cert, key: profile.key }
  const svid = profile.svidSource.getX509Svid()
  const pem = svid.toPem()
  return { cert: pem.certChain, key: pem.key }
}
