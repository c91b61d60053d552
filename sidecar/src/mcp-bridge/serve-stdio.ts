/**
 * `svidecar mcp serve-stdio`: a stdio MCP server exposed over Streamable HTTP
 * (session era, protocol 2025-11-25 and older) on loopback, for an inbound
 * listener to put mTLS and policy in front of.
 *
 * Sessions: each `initialize` starts its own child. A stdio server serves one
 * client, and the clients behind one inbound listener are many (several
 * agents, or one agent reconnecting after a crash without a DELETE); one
 * shared child would mix their state (log level, subscriptions, roots) and a
 * refused second session would lock everyone out until the first ends.
 * `--max-sessions` caps the children (a new session past it is refused with
 * 503 and SVD_BRIDGE_SESSION_LIMIT); `--max-sessions 1` suits a server that
 * cannot run twice. Sessions that sit idle (no request in flight, no GET
 * stream) past `--session-idle-timeout` are ended and their child stopped.
 *
 * A child that exits ends its session: pending requests are answered with
 * SVD_BRIDGE_CHILD_EXITED, and the session id then gets 404, which tells an
 * MCP client to initialize again, which starts a fresh child. That is the
 * restart policy: on demand, one child per new session, never a crash loop.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Writable } from 'node:stream'
import type { Logger } from '../observe/log.ts'
import {
  asMessage,
  type BridgeErrorCode,
  bridgeError,
  INVALID_REQUEST,
  idKey,
  type JsonRpcId,
  type JsonRpcMessage,
  kindOf,
  PARSE_ERROR,
  protocolError,
} from './jsonrpc.ts'
import { type Accepts, PostReply } from './replies.ts'
import { BridgeSession } from './session.ts'

export interface ServeStdioOptions {
  command: string
  args: readonly string[]
  host: string
  port: number
  path: string
  maxLineBytes: number
  requestTimeoutMs: number
  maxSessions: number
  /** 0 keeps idle sessions for ever. */
  sessionIdleTimeoutMs: number
  logger: Logger
  childStderr?: Writable
}

const SESSION_HEADER = 'mcp-session-id'
/**
 * The protocol versions of the session era, which a stdio server behind the bridge speaks over HTTP (2024-10-07:
 * the TypeScript SDK still negotiates that pre-release revision).
 */
const SESSION_ERA_VERSIONS = ['2024-10-07', '2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25'] as const

export class StdioBridgeServer {
  readonly #options: ServeStdioOptions
  readonly #server: Server
  readonly #sessions = new Map<string, BridgeSession>()
  readonly #sweep: NodeJS.Timeout | undefined
  #closing = false
  readonly #stopping = new Set<Promise<void>>()

  private constructor(options: ServeStdioOptions) {
    this.#options = options
    this.#server = createServer((req, res) => this.#handle(req, res))
    const idle = options.sessionIdleTimeoutMs
    if (idle > 0) {
      this.#sweep = setInterval(() => this.#reapIdle(), Math.min(Math.max(idle / 4, 50), 30_000))
      this.#sweep.unref()
    }
  }

  static async start(options: ServeStdioOptions): Promise<StdioBridgeServer> {
    const bridge = new StdioBridgeServer(options)
    await new Promise<void>((resolve, reject) => {
      bridge.#server.once('error', reject)
      bridge.#server.listen(options.port, options.host, () => {
        bridge.#server.off('error', reject)
        resolve()
      })
    })
    return bridge
  }

  get address(): AddressInfo {
    return this.#server.address() as AddressInfo
  }

  get url(): string {
    const { address, port } = this.address
    const host = address.includes(':') ? `[${address}]` : address
    return `http://${host}:${port}${this.#options.path}`
  }

  get sessionCount(): number {
    return this.#sessions.size
  }

  /** Stops taking requests, ends every session (each child gets MCP's stdio shutdown), closes the server. */
  async close(): Promise<void> {
    this.#closing = true
    if (this.#sweep !== undefined) clearInterval(this.#sweep)
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    await Promise.all([
      ...[...this.#sessions.values()].map((s) => s.end('the bridge is shutting down')),
      ...this.#stopping,
    ])
    this.#server.closeAllConnections()
    await closed
  }

  #endInBackground(session: BridgeSession, why: string): void {
    const stopping = session.end(why)
    this.#stopping.add(stopping)
    void stopping.finally(() => this.#stopping.delete(stopping))
  }

  #reapIdle(): void {
    const now = Date.now()
    for (const s of this.#sessions.values())
      if (s.idleSince(now) > this.#options.sessionIdleTimeoutMs)
        this.#endInBackground(s, 'idle past --session-idle-timeout')
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://bridge')
    if (url.pathname !== this.#options.path) {
      fail(
        res,
        404,
        protocolError(
          null,
          INVALID_REQUEST,
          `no MCP endpoint at ${url.pathname}; it is at ${this.#options.path}`,
        ),
      )
      return
    }
    // Loopback servers must refuse browser pages from elsewhere (DNS rebinding); agents send no Origin.
    const origin = req.headers.origin
    if (origin !== undefined && !isLoopbackOrigin(origin)) {
      fail(res, 403, protocolError(null, INVALID_REQUEST, 'Origin is not a loopback origin'))
      return
    }
    if (req.method === 'POST') void this.#post(req, res)
    else if (req.method === 'GET') this.#get(req, res)
    else if (req.method === 'DELETE') void this.#delete(req, res)
    else {
      res.setHeader('allow', 'GET, POST, DELETE')
      fail(
        res,
        405,
        protocolError(null, INVALID_REQUEST, `method ${req.method} is not allowed on an MCP endpoint`),
      )
    }
  }

  /** The session a non-initialize request names, or the error already sent. */
  #session(req: IncomingMessage, res: ServerResponse): BridgeSession | undefined {
    const id = req.headers[SESSION_HEADER]
    if (typeof id !== 'string' || id === '') {
      fail(
        res,
        400,
        protocolError(null, INVALID_REQUEST, 'Mcp-Session-Id header is required; send initialize first'),
      )
      return undefined
    }
    const session = this.#sessions.get(id)
    if (session === undefined || session.ended) {
      fail(
        res,
        404,
        bridgeError(
          null,
          'SVD_BRIDGE_SESSION_NOT_FOUND',
          'no such session (ended, or its stdio server exited); initialize a new one',
        ),
      )
      return undefined
    }
    return session
  }

  async #post(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const accepts = parseAccept(req.headers.accept)
    if (!accepts.json && !accepts.sse) {
      fail(
        res,
        406,
        protocolError(null, INVALID_REQUEST, 'Accept must list application/json and text/event-stream'),
      )
      return
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
    if (type !== 'application/json') {
      fail(res, 415, protocolError(null, INVALID_REQUEST, 'Content-Type must be application/json'))
      return
    }
    const body = await readCapped(req, this.#options.maxLineBytes)
    if (body === 'too-large') {
      res.setHeader('connection', 'close')
      fail(
        res,
        413,
        bridgeError(
          null,
          'SVD_BRIDGE_MESSAGE_TOO_LARGE',
          `the message is over the ${this.#options.maxLineBytes}-byte cap`,
        ),
      )
      req.destroy()
      return
    }
    if (body === 'aborted') return
    let value: unknown
    try {
      value = JSON.parse(body)
    } catch {
      fail(res, 400, protocolError(null, PARSE_ERROR, 'the body is not JSON'))
      return
    }
    const batch = Array.isArray(value)
    const items = batch ? (value as unknown[]) : [value]
    if (items.length === 0) {
      fail(res, 400, protocolError(null, INVALID_REQUEST, 'an empty batch'))
      return
    }
    const messages: JsonRpcMessage[] = []
    for (const item of items) {
      const m = asMessage(item)
      if (typeof m === 'string') {
        fail(res, 400, protocolError(null, INVALID_REQUEST, `not a JSON-RPC message: ${m}`))
        return
      }
      messages.push(m)
    }
    const initialize = messages.some((m) => m.method === 'initialize' && kindOf(m) === 'request')
    if (initialize && batch) {
      fail(res, 400, protocolError(null, INVALID_REQUEST, 'initialize must be sent alone, not in a batch'))
      return
    }
    // After initialize (which negotiates the version in its body), the header names the version in use.
    if (!initialize && !this.#versionServed(req, res)) return
    if (batch) {
      const problem = batchProblem(messages, req.headers['mcp-protocol-version'])
      if (problem !== undefined) {
        fail(res, 400, protocolError(null, INVALID_REQUEST, problem))
        return
      }
    }
    let session: BridgeSession | undefined
    if (initialize) {
      session = this.#newSession(res)
      if (session === undefined) return
    } else {
      session = this.#session(req, res)
      if (session === undefined) return
    }
    const requests = messages.filter((m) => kindOf(m) === 'request').length
    if (requests === 0) {
      session.fromClient(messages, undefined)
      res.writeHead(202).end()
      return
    }
    const reply = new PostReply(res, {
      accepts,
      batch,
      requests,
      headers: { [SESSION_HEADER]: session.id },
    })
    session.fromClient(messages, reply)
  }

  #newSession(res: ServerResponse): BridgeSession | undefined {
    const refuse = (code: BridgeErrorCode, message: string) => {
      res.setHeader('retry-after', '1')
      fail(res, 503, bridgeError(null, code, message))
      return undefined
    }
    if (this.#closing) return refuse('SVD_BRIDGE_SHUTTING_DOWN', 'the bridge is shutting down')
    if (this.#sessions.size >= this.#options.maxSessions) {
      this.#options.logger.warn('new session refused: every session slot is taken', {
        code: 'SVD_BRIDGE_SESSION_LIMIT',
        maxSessions: this.#options.maxSessions,
      })
      return refuse(
        'SVD_BRIDGE_SESSION_LIMIT',
        `all ${this.#options.maxSessions} session(s) of this stdio server are in use; retry after one ends`,
      )
    }
    const o = this.#options
    const session = new BridgeSession(
      {
        command: o.command,
        args: o.args,
        maxLineBytes: o.maxLineBytes,
        requestTimeoutMs: o.requestTimeoutMs,
        logger: o.logger,
        ...(o.childStderr === undefined ? {} : { childStderr: o.childStderr }),
      },
      (s) => this.#sessions.delete(s.id),
    )
    this.#sessions.set(session.id, session)
    return session
  }

  /**
   * 2025-06-18 and later transports: a request whose MCP-Protocol-Version the server does not support is 400. The
   * bridge serves the session era only; -32600, not a 2026-07-28 error code, so a dual-era client that probed
   * with a stateless request falls back to initialize. False when the refusal is sent.
   */
  #versionServed(req: IncomingMessage, res: ServerResponse): boolean {
    const raw = req.headers['mcp-protocol-version']
    if (raw === undefined) return true
    const version = String(raw).trim()
    if ((SESSION_ERA_VERSIONS as readonly string[]).includes(version)) return true
    fail(
      res,
      400,
      protocolError(
        null,
        INVALID_REQUEST,
        `MCP-Protocol-Version ${version.slice(0, 40)} is not served here; supported: ${SESSION_ERA_VERSIONS.join(', ')}`,
      ),
    )
    return false
  }

  #get(req: IncomingMessage, res: ServerResponse): void {
    if (!parseAccept(req.headers.accept, false).sse) {
      fail(res, 406, protocolError(null, INVALID_REQUEST, 'Accept must list text/event-stream'))
      return
    }
    if (!this.#versionServed(req, res)) return
    const session = this.#session(req, res)
    if (session === undefined) return
    if (!session.openStream(res, { [SESSION_HEADER]: session.id }))
      fail(res, 409, protocolError(null, INVALID_REQUEST, 'this session already has a GET stream open'))
  }

  async #delete(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.#versionServed(req, res)) return
    const session = this.#session(req, res)
    if (session === undefined) return
    // The client need not wait out the child's shutdown grace; close() still waits for it.
    this.#endInBackground(session, 'the client sent DELETE')
    res.writeHead(200).end()
  }
}

/**
 * Why a batch cannot be served: 2025-06-18 removed JSON-RPC batches (absent, the header means 2025-03-26, which
 * had them), and request ids must be unique among the client's outstanding requests.
 */
function batchProblem(
  messages: readonly JsonRpcMessage[],
  version: string | string[] | undefined,
): string | undefined {
  const v = version === undefined ? '2025-03-26' : String(version).trim()
  if (v !== '2024-10-07' && v !== '2024-11-05' && v !== '2025-03-26')
    return `JSON-RPC batches are not allowed in protocol version ${v}`
  const ids = new Set<string>()
  for (const m of messages) {
    if (kindOf(m) !== 'request') continue
    const key = idKey(m.id as JsonRpcId)
    if (ids.has(key)) return `the batch repeats request id ${JSON.stringify(m.id)}`
    ids.add(key)
  }
  return undefined
}

function fail(res: ServerResponse, status: number, body: JsonRpcMessage): void {
  if (res.headersSent) {
    res.end()
    return
  }
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
  })
  res.end(text)
}

/** Which reply forms the client takes; no Accept (or `*\/*`) takes both. */
export function parseAccept(header: string | undefined, jsonDefault = true): Accepts {
  if (header === undefined || header.trim() === '') return { json: jsonDefault, sse: true }
  const types = header.split(',').map((p) => p.split(';')[0]?.trim().toLowerCase() ?? '')
  const any = types.includes('*/*')
  return {
    json: any || types.includes('application/json') || types.includes('application/*'),
    sse: any || types.includes('text/event-stream') || types.includes('text/*'),
  }
}

function isLoopbackOrigin(origin: string): boolean {
  try {
    const host = new URL(origin).hostname
    return host === 'localhost' || host === '127.0.0.1' || host === '[::1]' || host.endsWith('.localhost')
  } catch {
    return false
  }
}

function readCapped(req: IncomingMessage, max: number): Promise<string | 'too-large' | 'aborted'> {
  return new Promise((resolve) => {
    const declared = Number(req.headers['content-length'])
    if (Number.isFinite(declared) && declared > max) {
      resolve('too-large')
      return
    }
    const parts: Buffer[] = []
    let size = 0
    let done = false
    req.on('data', (chunk: Buffer) => {
      if (done) return
      size += chunk.length
      if (size > max) {
        done = true
        resolve('too-large')
        return
      }
      parts.push(chunk)
    })
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(parts, size).toString('utf8'))
      done = true
    })
    req.on('close', () => {
      if (!done) resolve('aborted')
      done = true
    })
  })
}
