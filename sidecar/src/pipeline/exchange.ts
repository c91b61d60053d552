/**
 * One request on its way through the pipeline: what the listener knew when
 * it accepted it, and what stages learned since. Stages never call each
 * other; they read and fill this object (subject, route, upstream,
 * outgoing headers, attributes) and the forwarder sends what it says.
 */
import type { IncomingMessage } from 'node:http'
import type { SpiffeId } from 'workload-api-client'
import type { EndCallback } from '../forwarder/http.ts'
import type { ErrorStyle, Reply } from '../forwarder/respond.ts'
import type { Upstream } from '../forwarder/upstreams.ts'
import { publishRequest, type RequestEvent, wantsRequest } from '../observe/events.ts'
import type { PolicyResource } from '../policy/engine.ts'

export type Direction = 'inbound' | 'outbound'

/** What the listener reads from the client and what it has already decided about the outgoing headers. */
export interface OutgoingHeaders {
  /** Lower-case names never forwarded (a stage may add to it). */
  readonly strip: Set<string>
  /** The same names, for reading only. */
  readonly stripped: ReadonlySet<string>
  /** Fields the sidecar sets; each replaces every copy the client sent. */
  readonly set: Record<string, string>
}

const NONE: ReadonlySet<string> = new Set()

/**
 * The listener's strip list is one Set shared by its requests; a request gets its own copy only when a stage
 * adds to it (an HTTPS upstream's Host), instead of a new Set per request.
 */
class Outgoing implements OutgoingHeaders {
  readonly set: Record<string, string> = {}
  #shared: ReadonlySet<string>
  #own: Set<string> | undefined

  constructor(shared: ReadonlySet<string>) {
    this.#shared = shared
  }

  get strip(): Set<string> {
    if (this.#own === undefined) {
      this.#own = new Set(this.#shared)
      this.#shared = this.#own
    }
    return this.#own
  }

  get stripped(): ReadonlySet<string> {
    return this.#shared
  }
}

export interface ExchangeInit {
  direction: Direction
  listener: string
  req: IncomingMessage
  upgrade: boolean
  /** A Set is shared, never written to (see Outgoing); any other iterable is copied. */
  strip?: Iterable<string>
  /** Inbound: the peer the TLS layer verified, which is also the subject. */
  peer?: SpiffeId
}

export class Exchange {
  readonly direction: Direction
  /** The listener's name from the config. */
  readonly listener: string
  readonly req: IncomingMessage
  /** A WebSocket (or other) upgrade rather than a plain request. */
  readonly upgrade: boolean
  readonly started = performance.now()
  /** Who acts: inbound, the verified peer; outbound, this workload. Set by the identity stage. */
  subject: SpiffeId | undefined
  /** The verified client at the other end of an inbound connection. */
  peer: SpiffeId | undefined
  /** The route's name (outbound: the upstream it names), for events and policy. */
  route: string | undefined
  upstream: Upstream | undefined
  readonly headers: OutgoingHeaders
  /** What lenses learned about the request (model, MCP method, tool, ...), for policy to read. */
  readonly attributes: Record<string, unknown> = {}
  /**
   * What the request asks for, when a lens named it (`llm.model`); the policy stage decides it instead of
   * the request's `http.route`.
   */
  resource: PolicyResource | undefined
  /** A lens made every policy decision the request needs (one per MCP message); the policy stage adds none. */
  decided = false
  /** W3C traceparent of the request (the client's when valid, else the sidecar's); set by the trace stage. */
  traceparent: string | undefined
  /** The whole body, when a stage asked for it (under that stage's cap); otherwise it streams. */
  body: Buffer | undefined
  /**
   * The answer a refusing stage wrote in the protocol the client speaks (a JSON-RPC error, a 403 with
   * `WWW-Authenticate`); the refusal's code is still what events report. Absent: the sidecar's JSON error.
   */
  reply: Reply | undefined
  /** The lens the matched route names (`llm`): its stages act on this exchange, others pass it by. */
  lens: 'llm' | undefined
  /** The shape refusals are written in: a lens sets its provider's, so the client's SDK can parse them. */
  errorStyle: ErrorStyle = 'svidecar'
  /** The request headers the policy may read (`policy.headers`), copied once for every decision it needs. */
  policyHeaders: Readonly<Record<string, string>> | undefined
  #ended = false
  #onEnd: EndCallback[] | undefined
  #endedWith: Parameters<EndCallback> | undefined

  constructor(init: ExchangeInit) {
    this.direction = init.direction
    this.listener = init.listener
    this.req = init.req
    this.upgrade = init.upgrade
    const strip = init.strip
    this.headers = new Outgoing(
      strip === undefined ? NONE : strip instanceof Set ? (strip as ReadonlySet<string>) : new Set(strip),
    )
    this.peer = init.peer
    this.subject = init.peer
  }

  get method(): string {
    return this.req.method ?? ''
  }

  /** The request path without its query; origin-form once the target stage ran. */
  get path(): string {
    const url = this.req.url ?? '/'
    const q = url.indexOf('?')
    return q === -1 ? url : url.slice(0, q)
  }

  /**
   * Runs `fn` once when the exchange ends, however it ends (refused by a later stage, upstream failure, client
   * gone, response done), before the request event: a stage that holds something per request (a budget
   * reservation) releases it here. Called in the order registered; at once when the exchange already ended.
   */
  onEnd(fn: EndCallback): void {
    if (this.#endedWith !== undefined) {
      runQuietly(fn, this.#endedWith)
      return
    }
    if (this.#onEnd === undefined) this.#onEnd = [fn]
    else this.#onEnd.push(fn)
  }

  /**
   * The one report per request, whichever way it ends. A client that left is reported as aborted, not under
   * a made-up status; a code that is not the sidecar's (CLIENT_ABORTED) becomes the reason.
   */
  readonly end: EndCallback = (status, code, err) => {
    if (this.#ended) return
    this.#ended = true
    this.#endedWith = [status, code, err]
    if (this.#onEnd !== undefined) for (const fn of this.#onEnd) runQuietly(fn, this.#endedWith)
    this.#onEnd = undefined
    if (!wantsRequest()) return
    const own = err !== undefined || (code?.startsWith('SVD_') ?? false)
    const reason = err?.reason ?? (own ? undefined : code)
    const aborted = code === 'CLIENT_ABORTED'
    // Built field by field in the order the spreads gave it (absent fields left out), rather than from a
    // spread of a small object per optional field: this runs for every request.
    const e = { listener: this.listener, direction: this.direction, method: this.method } as RequestEvent
    if (this.route !== undefined) {
      e.route = this.route
      e.upstream = this.route
    }
    e.status = aborted ? 0 : status
    if (own && code !== undefined) e.code = code
    if (reason !== undefined) e.reason = reason
    if (aborted) e.aborted = aborted
    e.durationMs = performance.now() - this.started
    if (this.peer !== undefined) e.peerId = this.peer.toString()
    publishRequest(e)
  }
}

function runQuietly(fn: EndCallback, args: Parameters<EndCallback>): void {
  try {
    fn(...args)
  } catch {
    // A stage's clean-up must not keep the request from being reported.
  }
}
