/**
 * A development SPIFFE Workload API: the real gRPC protocol on a unix
 * socket, serving SVIDs from a DevCa to whoever connects, the way a SPIRE
 * agent serves the entries that match a caller. It behaves like SPIRE where
 * a client can tell (security header, PERMISSION_DENIED with no identity,
 * full-state stream messages, rotation at half the TTL, CA rotation with two
 * roots, federated bundles per workload) and can also do what SPIRE will not
 * do on demand: deny, restart, revoke, rotate now.
 *
 * It does no attestation: every configured workload is the caller's. Give
 * several sidecars distinct identities with hints, as with SPIRE entries
 * that share a uid.
 */
import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js'
import {
  BundleSet,
  type JsonValue,
  JwtBundle,
  JwtSvid,
  SpiffeError,
  SpiffeId,
  TrustDomain,
} from 'workload-api-client'
import {
  type JWTSVIDRequest,
  type MessageInit,
  SECURITY_HEADER_KEY,
  SECURITY_HEADER_VALUE,
  type ValidateJWTSVIDRequest,
  WORKLOAD_API_SERVICE,
  type X509SVIDResponse,
} from 'workload-api-client/wire'
import { DevCa, type IssuedX509Svid, type KeyType } from './ca.ts'
import { DevJwtIssuer } from './jwt.ts'

export interface DevWorkload {
  spiffeId: string
  hint?: string
  /** Trust domains whose bundles this workload receives (SPIRE's -federatesWith). */
  federatesWith?: string[]
  /** Overrides the server's X.509-SVID TTL for this workload. */
  x509SvidTtlMs?: number
  keyType?: KeyType
}

export interface DevWorkloadApiOptions {
  /** Default `example.org`. */
  trustDomain?: string
  /** Default: `agent.sock` in a new temp directory (removed on close). */
  socketPath?: string
  workloads?: DevWorkload[]
  /** Default 1 h (SPIRE's default). SVIDs are renewed at half their lifetime. */
  x509SvidTtlMs?: number
  /** Default 5 min. */
  jwtSvidTtlMs?: number
  ca?: DevCa
  /**
   * Intermediates between the bundle root and the CA signing SVIDs (ignored
   * with `ca`), so SVIDs arrive as leaf + intermediates, as from SPIRE with an
   * UpstreamAuthority. CA rotations keep the depth. Default 0.
   */
  intermediates?: number
}

export interface FederatedBundle {
  /** Roots of the foreign trust domain. */
  x509?: DevCa | Buffer
  jwt?: DevJwtIssuer
}

interface Issued {
  workload: DevWorkload
  svid: IssuedX509Svid
  renewAtMs: number
}

type Stream = ServerWritableStream<unknown, unknown>

const HOUR = 3600_000

export class DevWorkloadApi extends EventEmitter {
  readonly trustDomain: string
  readonly socketPath: string
  readonly #tempDir: string | undefined
  readonly #x509TtlMs: number
  readonly #jwtTtlMs: number
  readonly #intermediates: number
  #server: Server | undefined
  #cas: DevCa[]
  #jwtIssuers: DevJwtIssuer[]
  #workloads: DevWorkload[]
  #issued = new Map<string, Issued>()
  #federated = new Map<string, FederatedBundle>()
  #streams = { x509: new Set<Stream>(), x509Bundles: new Set<Stream>(), jwtBundles: new Set<Stream>() }
  #denied = false
  #renewTimer: NodeJS.Timeout | undefined
  /** Number of RPCs served, by method; lets tests see reconnects. */
  readonly calls: Record<string, number> = {}

  private constructor(opts: DevWorkloadApiOptions) {
    super()
    this.trustDomain = opts.trustDomain ?? opts.ca?.trustDomain ?? 'example.org'
    if (opts.socketPath === undefined) {
      this.#tempDir = mkdtempSync(join(tmpdir(), 'svidecar-wlapi-'))
      this.socketPath = join(this.#tempDir, 'agent.sock')
    } else {
      this.socketPath = opts.socketPath
    }
    this.#x509TtlMs = opts.x509SvidTtlMs ?? HOUR
    this.#jwtTtlMs = opts.jwtSvidTtlMs ?? 5 * 60_000
    this.#intermediates = opts.intermediates ?? 0
    this.#cas = [
      opts.ca ?? DevCa.create({ trustDomain: this.trustDomain, intermediates: this.#intermediates }),
    ]
    this.#jwtIssuers = [DevJwtIssuer.create({ trustDomain: this.trustDomain })]
    this.#workloads = [...(opts.workloads ?? [])]
    for (const w of this.#workloads) SpiffeId.parse(w.spiffeId)
  }

  /** Starts serving on the socket. */
  static async start(opts: DevWorkloadApiOptions = {}): Promise<DevWorkloadApi> {
    const api = new DevWorkloadApi(opts)
    await api.#listen()
    return api
  }

  /** `unix://` + the socket path, for SPIFFE_ENDPOINT_SOCKET. */
  get endpoint(): string {
    return `unix://${this.socketPath}`
  }

  /** The CA currently signing SVIDs. */
  get ca(): DevCa {
    return this.#cas[this.#cas.length - 1] as DevCa
  }

  get jwtIssuer(): DevJwtIssuer {
    return this.#jwtIssuers[this.#jwtIssuers.length - 1] as DevJwtIssuer
  }

  get workloads(): readonly DevWorkload[] {
    return this.#workloads
  }

  /** The SVID currently served for a workload. */
  currentSvid(spiffeId: string): IssuedX509Svid | undefined {
    return this.#issued.get(spiffeId)?.svid
  }

  /** The own trust domain's roots, concatenated DER (all roots during a CA rotation). */
  bundleDer(): Buffer {
    return Buffer.concat(this.#cas.map((c) => c.bundleDer()))
  }

  bundlePem(): string {
    return this.#cas.map((c) => c.bundlePem()).join('')
  }

  addWorkload(workload: DevWorkload): void {
    SpiffeId.parse(workload.spiffeId)
    this.#workloads = [...this.#workloads.filter((w) => w.spiffeId !== workload.spiffeId), workload]
    this.#issued.delete(workload.spiffeId)
    this.#pushAll()
  }

  /** Deletes a workload's entry. With none left, X.509 streams end with PERMISSION_DENIED, as in SPIRE. */
  removeWorkload(spiffeId: string): void {
    this.#workloads = this.#workloads.filter((w) => w.spiffeId !== spiffeId)
    this.#issued.delete(spiffeId)
    this.#pushAll()
  }

  /** Issues fresh SVIDs for every workload now and pushes them. */
  rotateNow(): void {
    this.#issued.clear()
    this.#pushAll()
  }

  /** Starts a CA rotation: a new root joins the bundle and signs new SVIDs; the old root stays trusted. */
  rotateCa(keyType?: KeyType): DevCa {
    const next = DevCa.create({
      trustDomain: this.trustDomain,
      intermediates: this.#intermediates,
      ...(keyType === undefined ? {} : { keyType }),
    })
    this.#cas.push(next)
    this.#jwtIssuers.push(DevJwtIssuer.create({ trustDomain: this.trustDomain }))
    this.rotateNow()
    return next
  }

  /** Ends a CA rotation: only the newest root and JWT key stay in the bundles. */
  retireOldRoots(): void {
    this.#cas = [this.ca]
    this.#jwtIssuers = [this.jwtIssuer]
    this.#pushAll()
  }

  /** Sets (or with undefined, removes) the bundle of a federated trust domain. */
  setFederatedBundle(trustDomain: string, bundle: FederatedBundle | undefined): void {
    const td = TrustDomain.parse(trustDomain).name
    if (bundle === undefined) this.#federated.delete(td)
    else this.#federated.set(td, bundle)
    this.#pushAll()
  }

  /** Answers every call with PERMISSION_DENIED (and ends open X.509 streams so), until allow(). */
  denyAll(): void {
    this.#denied = true
    this.#pushAll()
  }

  allow(): void {
    this.#denied = false
  }

  /** Mints a JWT-SVID as FetchJWTSVID would (for tests that need a token of this trust domain). */
  mintJwtSvid(spiffeId: string, audience: string | string[]): string {
    return this.jwtIssuer.issue({ spiffeId, audience, ttlMs: this.#jwtTtlMs })
  }

  /** Stops serving: open streams fail with UNAVAILABLE and the socket disappears, like an agent stopping. */
  async stop(): Promise<void> {
    clearTimeout(this.#renewTimer)
    const server = this.#server
    this.#server = undefined
    if (server === undefined) return
    for (const set of Object.values(this.#streams)) {
      for (const call of set) endWithStatus(call, status.UNAVAILABLE, 'workload API shutting down')
      set.clear()
    }
    server.forceShutdown()
    rmSync(this.socketPath, { force: true })
    this.emit('stopped')
  }

  /** Serves again on the same socket path, with the same CA and workloads. */
  async resume(): Promise<void> {
    if (this.#server === undefined) await this.#listen()
  }

  /** stop() then resume(): an agent restart as a client sees it. */
  async restart(): Promise<void> {
    await this.stop()
    await this.resume()
  }

  async close(): Promise<void> {
    await this.stop()
    if (this.#tempDir !== undefined) rmSync(this.#tempDir, { recursive: true, force: true })
  }

  async #listen(): Promise<void> {
    // SPIRE removes a stale socket before binding; so do we.
    rmSync(this.socketPath, { force: true })
    const server = new Server()
    server.addService(WORKLOAD_API_SERVICE, this.#handlers())
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${this.socketPath}`, ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      )
    })
    this.#server = server
    this.#scheduleRenewal()
    this.emit('listening')
  }

  #handlers(): UntypedServiceImplementation {
    return {
      FetchX509SVID: (call: Stream) => this.#stream(call, this.#streams.x509, 'FetchX509SVID'),
      FetchX509Bundles: (call: Stream) => this.#stream(call, this.#streams.x509Bundles, 'FetchX509Bundles'),
      FetchJWTBundles: (call: Stream) => this.#stream(call, this.#streams.jwtBundles, 'FetchJWTBundles'),
      FetchJWTSVID: (call: ServerUnaryCall<JWTSVIDRequest, unknown>, cb: sendUnaryData<unknown>) =>
        this.#fetchJwtSvid(call, cb),
      ValidateJWTSVID: (call: ServerUnaryCall<ValidateJWTSVIDRequest, unknown>, cb: sendUnaryData<unknown>) =>
        this.#validateJwtSvid(call, cb),
      FetchWITSVID: (call: Stream) =>
        endWithStatus(call, status.UNIMPLEMENTED, 'WIT-SVIDs are not supported'),
      FetchWITBundles: (call: Stream) =>
        endWithStatus(call, status.UNIMPLEMENTED, 'WIT-SVIDs are not supported'),
    }
  }

  #count(method: string): void {
    this.calls[method] = (this.calls[method] ?? 0) + 1
  }

  #stream(call: Stream, set: Set<Stream>, method: string): void {
    this.#count(method)
    if (!hasSecurityHeader(call.metadata)) {
      endWithStatus(call, status.INVALID_ARGUMENT, 'security header missing from request')
      return
    }
    set.add(call)
    call.on('cancelled', () => set.delete(call))
    call.on('close', () => set.delete(call))
    this.#send(call, set)
    this.#scheduleRenewal()
  }

  #send(call: Stream, set: Set<Stream>): void {
    if (this.#denied || this.#workloads.length === 0) {
      set.delete(call)
      endWithStatus(call, status.PERMISSION_DENIED, 'no identity issued')
      return
    }
    if (set === this.#streams.x509) call.write(this.#x509Response())
    else if (set === this.#streams.x509Bundles)
      call.write({ crl: [], bundles: Object.fromEntries(this.#x509BundleMap()) })
    else call.write({ bundles: Object.fromEntries(this.#jwtBundleMap()) })
  }

  #pushAll(): void {
    for (const set of Object.values(this.#streams)) for (const call of [...set]) this.#send(call, set)
    this.#scheduleRenewal()
    this.emit('pushed')
  }

  #issue(w: DevWorkload): Issued {
    let issued = this.#issued.get(w.spiffeId)
    if (issued === undefined) {
      const ttl = w.x509SvidTtlMs ?? this.#x509TtlMs
      const svid = this.ca.issueX509Svid({
        spiffeId: w.spiffeId,
        ttlMs: ttl,
        ...(w.keyType === undefined ? {} : { keyType: w.keyType }),
      })
      // Half of the lifetime from issuance (the leaf's NotBefore is backdated 10 s).
      const now = Date.now()
      const notAfter = svid.certificates[0]?.validToDate.getTime() ?? now
      issued = { workload: w, svid, renewAtMs: now + (notAfter - now) / 2 }
      this.#issued.set(w.spiffeId, issued)
      this.emit('issued', { spiffeId: w.spiffeId, serialNumber: svid.certificates[0]?.serialNumber })
    }
    return issued
  }

  #x509Response(): MessageInit<X509SVIDResponse> {
    const bundle = this.bundleDer()
    const federated = new Map<string, Uint8Array>()
    const svids = this.#workloads.map((w) => {
      const { svid } = this.#issue(w)
      for (const td of w.federatesWith ?? []) {
        const der = federatedDer(this.#federated.get(TrustDomain.parse(td).name))
        if (der !== undefined) federated.set(`spiffe://${TrustDomain.parse(td).name}`, der)
      }
      return {
        spiffeId: w.spiffeId,
        x509Svid: svid.certChainDer,
        x509SvidKey: svid.keyDer,
        bundle,
        hint: w.hint ?? '',
      }
    })
    return { svids, crl: [], federatedBundles: Object.fromEntries(federated) }
  }

  #visibleFederated(): string[] {
    const names = new Set<string>()
    for (const w of this.#workloads)
      for (const td of w.federatesWith ?? []) names.add(TrustDomain.parse(td).name)
    return [...names].filter((n) => this.#federated.has(n))
  }

  #x509BundleMap(): Map<string, Uint8Array> {
    const map = new Map<string, Uint8Array>([[`spiffe://${this.trustDomain}`, this.bundleDer()]])
    for (const td of this.#visibleFederated()) {
      const der = federatedDer(this.#federated.get(td))
      if (der !== undefined) map.set(`spiffe://${td}`, der)
    }
    return map
  }

  #jwtBundleMap(): Map<string, Uint8Array> {
    const own = { keys: this.#jwtIssuers.flatMap((i) => i.jwks().keys) }
    const map = new Map<string, Uint8Array>([
      [`spiffe://${this.trustDomain}`, Buffer.from(JSON.stringify(own))],
    ])
    for (const td of this.#visibleFederated()) {
      const jwt = this.#federated.get(td)?.jwt
      if (jwt !== undefined) map.set(`spiffe://${td}`, Buffer.from(JSON.stringify(jwt.jwks())))
    }
    return map
  }

  #fetchJwtSvid(call: ServerUnaryCall<JWTSVIDRequest, unknown>, cb: sendUnaryData<unknown>): void {
    this.#count('FetchJWTSVID')
    if (!hasSecurityHeader(call.metadata)) {
      cb(grpcError(status.INVALID_ARGUMENT, 'security header missing from request'))
      return
    }
    const { audience, spiffeId } = call.request
    if (audience.length === 0) {
      cb(grpcError(status.INVALID_ARGUMENT, 'audience must be specified'))
      return
    }
    if (spiffeId !== '' && SpiffeId.tryParse(spiffeId) === undefined) {
      cb(grpcError(status.INVALID_ARGUMENT, `invalid requested SPIFFE ID: ${spiffeId}`))
      return
    }
    const matching = this.#denied
      ? []
      : this.#workloads.filter((w) => spiffeId === '' || w.spiffeId === spiffeId)
    if (matching.length === 0) {
      cb(grpcError(status.PERMISSION_DENIED, 'no identity issued'))
      return
    }
    const aud = audience.length === 1 ? (audience[0] as string) : [...audience]
    cb(null, {
      svids: matching.map((w) => ({
        spiffeId: w.spiffeId,
        svid: this.jwtIssuer.issue({ spiffeId: w.spiffeId, audience: aud, ttlMs: this.#jwtTtlMs }),
        hint: w.hint ?? '',
      })),
    })
  }

  #validateJwtSvid(call: ServerUnaryCall<ValidateJWTSVIDRequest, unknown>, cb: sendUnaryData<unknown>): void {
    this.#count('ValidateJWTSVID')
    if (!hasSecurityHeader(call.metadata)) {
      cb(grpcError(status.INVALID_ARGUMENT, 'security header missing from request'))
      return
    }
    const { audience, svid } = call.request
    if (audience === '') {
      cb(grpcError(status.INVALID_ARGUMENT, 'audience must be specified'))
      return
    }
    if (svid === '') {
      cb(grpcError(status.INVALID_ARGUMENT, 'svid must be specified'))
      return
    }
    const bundles = new BundleSet(
      [...this.#jwtBundleMap()].map(([td, json]) => JwtBundle.parseJwks(TrustDomain.parse(td), json)),
    )
    try {
      const token = JwtSvid.parseAndValidate(
        svid,
        { getJwtBundleForTrustDomain: (td) => bundles.get(td) },
        audience,
      )
      cb(null, { spiffeId: token.id.toString(), claims: token.claims as Record<string, JsonValue> })
    } catch (err) {
      const detail = err instanceof SpiffeError ? err.message : 'invalid token'
      cb(grpcError(status.INVALID_ARGUMENT, detail))
    }
  }

  #scheduleRenewal(): void {
    clearTimeout(this.#renewTimer)
    if (this.#server === undefined || this.#issued.size === 0) return
    const next = Math.min(...[...this.#issued.values()].map((i) => i.renewAtMs))
    this.#renewTimer = setTimeout(
      () => {
        const now = Date.now()
        for (const [id, issued] of this.#issued) if (issued.renewAtMs <= now) this.#issued.delete(id)
        this.#pushAll()
        this.emit('rotated')
      },
      Math.max(0, next - Date.now()),
    )
    this.#renewTimer.unref()
  }
}

function federatedDer(bundle: FederatedBundle | undefined): Buffer | undefined {
  const x509 = bundle?.x509
  if (x509 === undefined) return undefined
  return Buffer.isBuffer(x509) ? x509 : x509.bundleDer()
}

/** SPIRE requires exactly one value, `true` (pkg/agent/endpoints/middleware.go). */
function hasSecurityHeader(md: Metadata): boolean {
  const values = md.get(SECURITY_HEADER_KEY)
  return values.length === 1 && values[0] === SECURITY_HEADER_VALUE
}

function grpcError(code: number, details: string): Error & { code: number; details: string } {
  return Object.assign(new Error(details), { code, details })
}

// grpc-js ends a server stream with a status when an error is emitted on it.
function endWithStatus(call: Stream, code: number, details: string): void {
  call.emit('error', { code, details })
}
