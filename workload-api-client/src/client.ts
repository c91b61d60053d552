/**
 * The SPIFFE Workload API client: the five RPCs over @grpc/grpc-js, each
 * carrying the `workload.spiffe.io: true` header, with typed results and
 * typed errors. One-shot fetches open a stream, take its first message and
 * cancel it, as go-spiffe does; watches run the shared loop in watch.ts.
 */
import {
  type ChannelOptions,
  Client,
  type ClientReadableStream,
  credentials,
  Metadata,
  type MethodDefinition,
} from '@grpc/grpc-js'
import { type EndpointAddress, resolveEndpointAddress } from './address.ts'
import type { BundleSet } from './bundle-set.ts'
import { SpiffeError } from './errors.ts'
import { type BackoffStrategy, LinearBackoff } from './internal/backoff.ts'
import type {
  JWTBundlesResponse,
  JWTSVIDRequest,
  JWTSVIDResponse,
  ValidateJWTSVIDRequest,
  X509BundlesResponse,
  X509SVIDResponse,
} from './internal/gen/workload_pb.ts'
import {
  type Empty,
  type MessageInit,
  SECURITY_HEADER_KEY,
  SECURITY_HEADER_VALUE,
  type ValidateJWTSVIDResponse,
  WORKLOAD_API_SERVICE,
} from './internal/wire/service.ts'
import type { JwtBundle } from './jwt-bundle.ts'
import { JwtSvid } from './jwt-svid.ts'
import {
  parseJwtBundlesResponse,
  parseJwtSvidResponse,
  parseX509BundlesResponse,
  parseX509SvidResponse,
  type X509Context,
} from './responses.ts'
import { SpiffeId } from './spiffe-id.ts'
import { fromGrpcError } from './status.ts'
import { startWatch, type Watch, type WatchClock, type Watcher } from './watch.ts'
import type { X509Bundle } from './x509-bundle.ts'

export interface WorkloadApiClientOptions {
  /** `unix:///path` or `tcp://ip:port`; defaults to SPIFFE_ENDPOINT_SOCKET. */
  address?: string
  env?: NodeJS.ProcessEnv
  /** A fresh strategy per watch; default linear 1 s … 30 s, like go-spiffe. */
  backoff?: () => BackoffStrategy
  /** How long a watch stream must stay open after a good message before its backoff resets; default 10 s. */
  streamStableMs?: number
  /** Time for the watches' backoff; for tests. */
  clock?: WatchClock
  channelOptions?: ChannelOptions
}

export interface CallOptions {
  /** Give up after this long (SPIFFE_WLAPI_TIMEOUT). */
  timeoutMs?: number
  signal?: AbortSignal
}

export interface JwtSvidParams {
  /** One or more audiences; never empty (the server would refuse it, and it would be a bearer token for anyone). */
  audience: string | readonly string[]
  /** Ask for this identity only, when the workload has several. */
  spiffeId?: string | SpiffeId
}

// Request and response types per RPC this client calls.
interface Rpcs {
  FetchX509SVID: [Empty, X509SVIDResponse]
  FetchX509Bundles: [Empty, X509BundlesResponse]
  FetchJWTBundles: [Empty, JWTBundlesResponse]
  FetchJWTSVID: [MessageInit<JWTSVIDRequest>, JWTSVIDResponse]
  ValidateJWTSVID: [MessageInit<ValidateJWTSVIDRequest>, ValidateJWTSVIDResponse]
}
type StreamMethod = 'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTBundles'
type UnaryMethod = 'FetchJWTSVID' | 'ValidateJWTSVID'
type RequestOf<K extends keyof Rpcs> = Rpcs[K][0]
type ResponseOf<K extends keyof Rpcs> = Rpcs[K][1]

function definition<K extends keyof Rpcs>(method: K): MethodDefinition<RequestOf<K>, ResponseOf<K>> {
  return WORKLOAD_API_SERVICE[method] as unknown as MethodDefinition<RequestOf<K>, ResponseOf<K>>
}

// A closed agent should be found again within seconds, not grpc-js's default of up to two minutes.
const DEFAULT_CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 500,
  'grpc.max_reconnect_backoff_ms': 5000,
}

export class WorkloadApiClient {
  readonly address: EndpointAddress
  readonly #client: Client
  readonly #backoff: () => BackoffStrategy
  readonly #watchTiming: { stableAfterMs?: number; clock?: WatchClock }
  readonly #watches = new Set<Watch>()
  #closed = false

  /** Validates the address now (a bad one is a configuration error, not a retry); connects lazily. */
  constructor(options: WorkloadApiClientOptions = {}) {
    this.address = resolveEndpointAddress(options.address, options.env ?? process.env)
    this.#client = new Client(this.address.grpcTarget, credentials.createInsecure(), {
      ...DEFAULT_CHANNEL_OPTIONS,
      ...options.channelOptions,
    })
    this.#backoff = options.backoff ?? (() => new LinearBackoff())
    const stable = options.streamStableMs
    if (stable !== undefined && !(Number.isFinite(stable) && stable >= 0)) {
      throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', `streamStableMs must be 0 or more, got ${stable}`)
    }
    this.#watchTiming = {
      ...(options.streamStableMs === undefined ? {} : { stableAfterMs: options.streamStableMs }),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    }
  }

  /** The first X.509 context the server sends: SVIDs and bundles. */
  fetchX509Context(options: CallOptions = {}): Promise<X509Context> {
    return this.#first('FetchX509SVID', parseX509SvidResponse, options)
  }

  fetchX509Bundles(options: CallOptions = {}): Promise<BundleSet<X509Bundle>> {
    return this.#first('FetchX509Bundles', parseX509BundlesResponse, options)
  }

  fetchJwtBundles(options: CallOptions = {}): Promise<BundleSet<JwtBundle>> {
    return this.#first('FetchJWTBundles', parseJwtBundlesResponse, options)
  }

  /** Every JWT-SVID the server issues for the audience (one per identity). */
  async fetchJwtSvids(params: JwtSvidParams, options: CallOptions = {}): Promise<JwtSvid[]> {
    const audience = audienceList(params.audience)
    const spiffeId =
      params.spiffeId === undefined ? '' : SpiffeId.parse(params.spiffeId.toString()).toString()
    const response = await this.#unary('FetchJWTSVID', { audience: [...audience], spiffeId }, options)
    return parseJwtSvidResponse(response, audience)
  }

  /** The first JWT-SVID for the audience (ask by spiffeId when the workload has several). */
  async fetchJwtSvid(params: JwtSvidParams, options: CallOptions = {}): Promise<JwtSvid> {
    return (await this.fetchJwtSvids(params, options))[0] as JwtSvid
  }

  /**
   * Has the agent validate a token with the keys it holds (own and federated
   * trust domains), then parses it locally without a second signature check.
   */
  async validateJwtSvid(token: string, audience: string, options: CallOptions = {}): Promise<JwtSvid> {
    if (typeof audience !== 'string' || audience === '') {
      throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', 'ValidateJWTSVID needs a non-empty audience', {
        reason: 'EMPTY_AUDIENCE',
      })
    }
    if (typeof token !== 'string' || token === '') {
      throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', 'ValidateJWTSVID needs a token', {
        reason: 'EMPTY_TOKEN',
      })
    }
    const response = await this.#unary('ValidateJWTSVID', { audience, svid: token }, options)
    const svid = JwtSvid.parseInsecure(token, audience)
    if (response.spiffeId !== '' && response.spiffeId !== svid.id.toString()) {
      throw new SpiffeError(
        'SPIFFE_WLAPI_MALFORMED_RESPONSE',
        `ValidateJWTSVID answered ${response.spiffeId} for a token whose sub is ${svid.id}`,
        { reason: 'ID_MISMATCH' },
      )
    }
    return svid
  }

  watchX509Context(watcher: Watcher<X509Context>): Watch {
    return this.#watch('FetchX509SVID', parseX509SvidResponse, watcher)
  }

  watchX509Bundles(watcher: Watcher<BundleSet<X509Bundle>>): Watch {
    return this.#watch('FetchX509Bundles', parseX509BundlesResponse, watcher)
  }

  watchJwtBundles(watcher: Watcher<BundleSet<JwtBundle>>): Watch {
    return this.#watch('FetchJWTBundles', parseJwtBundlesResponse, watcher)
  }

  /** Stops every watch and closes the channel; later calls fail with SPIFFE_WLAPI_CLOSED. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const w of this.#watches) w.close()
    this.#watches.clear()
    this.#client.close()
  }

  get closed(): boolean {
    return this.#closed
  }

  #checkOpen(): void {
    if (this.#closed) throw closedClient()
  }

  #metadata(): Metadata {
    const md = new Metadata()
    md.set(SECURITY_HEADER_KEY, SECURITY_HEADER_VALUE)
    return md
  }

  #stream<K extends StreamMethod>(method: K): ClientReadableStream<ResponseOf<K>> {
    this.#checkOpen()
    const def = definition(method)
    return this.#client.makeServerStreamRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
      {},
      this.#metadata(),
    )
  }

  #unary<K extends UnaryMethod>(
    method: K,
    request: RequestOf<K>,
    options: CallOptions,
  ): Promise<ResponseOf<K>> {
    if (this.#closed) return Promise.reject(closedClient())
    if (options.signal?.aborted) return Promise.reject(abortedCall(method))
    const def = definition(method)
    return new Promise<ResponseOf<K>>((resolve, reject) => {
      let aborted = false
      const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs
      const call = this.#client.makeUnaryRequest(
        def.path,
        def.requestSerialize,
        def.responseDeserialize,
        request,
        this.#metadata(),
        deadline === undefined ? {} : { deadline },
        (err, value) => {
          options.signal?.removeEventListener('abort', onAbort)
          // Our own cancel reads as the streams' abort does, not as a CANCELLED status from the server.
          if (err) reject(aborted ? abortedCall(method) : fromGrpcError(err, method))
          else resolve(value as ResponseOf<K>)
        },
      )
      const onAbort = () => {
        aborted = true
        call.cancel()
      }
      options.signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  #first<K extends StreamMethod, T>(
    method: K,
    parse: (m: ResponseOf<K>) => T,
    options: CallOptions,
  ): Promise<T> {
    // Refusals go through the promise: a caller chaining .catch() must not get a synchronous throw.
    if (this.#closed) return Promise.reject(closedClient())
    // An aborted signal refuses the call before any RPC, as every AbortSignal-taking API does.
    if (options.signal?.aborted) return Promise.reject(abortedCall(method))
    const stream = this.#stream(method)
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const finish = (fn: () => void) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
        stream.cancel()
        fn()
      }
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(
              () =>
                finish(() =>
                  reject(
                    new SpiffeError(
                      'SPIFFE_WLAPI_TIMEOUT',
                      `${method}: no message within ${options.timeoutMs} ms`,
                    ),
                  ),
                ),
              options.timeoutMs,
            )
      const onAbort = () => finish(() => reject(abortedCall(method)))
      options.signal?.addEventListener('abort', onAbort, { once: true })
      stream.on('data', (message: ResponseOf<K>) => {
        finish(() => {
          try {
            resolve(parse(message))
          } catch (err) {
            reject(err)
          }
        })
      })
      stream.on('error', (err) => finish(() => reject(fromGrpcError(err, method))))
      stream.on('end', () =>
        finish(() =>
          reject(
            new SpiffeError('SPIFFE_WLAPI_UNAVAILABLE', `${method}: stream ended without a message`, {
              reason: 'EMPTY_STREAM',
            }),
          ),
        ),
      )
    })
  }

  #watch<K extends StreamMethod, T>(method: K, parse: (m: ResponseOf<K>) => T, watcher: Watcher<T>): Watch {
    this.#checkOpen()
    const watch = startWatch<ResponseOf<K>, T>({
      rpc: method,
      open: () => this.#stream(method),
      parse,
      watcher,
      backoff: this.#backoff(),
      ...this.#watchTiming,
    })
    this.#watches.add(watch)
    const forget = () => this.#watches.delete(watch)
    watch.done.then(forget, forget)
    return watch
  }
}

function closedClient(): SpiffeError {
  return new SpiffeError('SPIFFE_WLAPI_CLOSED', 'Workload API client is closed')
}

function abortedCall(method: string): SpiffeError {
  return new SpiffeError('SPIFFE_WLAPI_CLOSED', `${method}: aborted`, { reason: 'ABORTED' })
}

/** Audiences as a non-empty list of non-empty strings (C37: never send an empty audience). */
export function audienceList(audience: string | readonly string[]): readonly string[] {
  const list = typeof audience === 'string' ? [audience] : audience
  if (!Array.isArray(list) || list.length === 0 || list.some((a) => typeof a !== 'string' || a === '')) {
    throw new SpiffeError('SPIFFE_ARGUMENT_INVALID', 'a JWT-SVID needs at least one non-empty audience', {
      reason: 'EMPTY_AUDIENCE',
    })
  }
  return list
}
