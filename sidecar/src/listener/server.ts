/**
 * What every proxy listener shares: Node's HTTP server hardened with our
 * limits, malformed-request answers in the sidecar's error format, and a
 * graceful close that drains in-flight requests until a deadline.
 */
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { Server as TlsServer } from 'node:tls'
import { listenHost } from '../config/address.ts'
import { SvidecarError } from '../errors/index.ts'
import { writeRawError } from '../forwarder/raw-error.ts'
import { sendError } from '../forwarder/respond.ts'
import { publishConnection, publishRefused } from '../observe/events.ts'
import type { Pipeline } from '../pipeline/build.ts'
import type { Exchange } from '../pipeline/exchange.ts'
import { parserHeaderLimit } from './http-guards.ts'
import { overflowInRequestLine, unknownMethod } from './parser-refusals.ts'

export interface ListenerLimits {
  maxHeaderBytes: number
  maxHeaderCount: number
  headersTimeoutMs: number
  /** 0 = none. */
  requestTimeoutMs: number
  /** Keep-alive idle time between requests. */
  idleTimeoutMs: number
  /** Longest silence inside a request body; 0 = none. */
  bodyIdleTimeoutMs: number
  /** 0 = no limit. */
  maxBodyBytes: number
  maxConnections: number
}

// After a refusal written on a raw socket, how long the client may take to read it and hang up before it is cut.
const MAX_LINGER_MS = 2000

export interface HostPort {
  host: string
  port: number
}

export function httpServerOptions(limits: ListenerLimits): ServerOptions {
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    // Node checks the two timeouts above only this often (30 s by default): a slowloris client would get that long.
    connectionsCheckingInterval: Math.max(250, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
    // Duplicates must stay visible to the request guards, never be folded into one value.
    joinDuplicateHeaders: false,
    insecureHTTPParser: false,
    // Checked by the request guards instead, so the 400 carries the sidecar's error format.
    requireHostHeader: false,
    noDelay: true,
    shouldUpgradeCallback: isWebSocketHandshake,
  }
}

/**
 * RFC 6455 §4.1: a WebSocket handshake is an HTTP/1.1 GET. Any other upgrade offer (h2c from `curl --http2`, a POST
 * naming websocket) is served as the HTTP/1.1 request it also is (RFC 9110 §7.8 lets a server ignore Upgrade), its
 * Upgrade field and what Connection lists kept on their hop. Unsupported protocols never reach the upgrade path.
 * An HTTP/1.0 request's Upgrade must be ignored (RFC 9110 §7.8): a 1.0 client cannot have meant it.
 */
function isWebSocketHandshake(req: IncomingMessage): boolean {
  return (
    req.method === 'GET' &&
    req.httpVersionMajor === 1 &&
    req.httpVersionMinor >= 1 &&
    req.headers.upgrade?.trim().toLowerCase() === 'websocket'
  )
}

export class ProxyListener {
  readonly name: string
  readonly direction: 'inbound' | 'outbound'
  readonly server: Server
  #draining = false
  #closing: Promise<void> | undefined
  // Every TCP connection, including TLS handshakes in progress and upgraded (WebSocket) ones, which Node's
  // closeAllConnections() does not know about: the drain deadline must end them too.
  readonly #sockets = new Set<Socket>()

  constructor(name: string, direction: 'inbound' | 'outbound', server: Server, limits: ListenerLimits) {
    this.name = name
    this.direction = direction
    this.server = server
    // Node refuses a head with more fields than this (HPE_HEADER_OVERFLOW, answered 431 below; pinned in
    // node-http-facts.test.ts); it leaves room for the fields the count skips, which the guards count exactly.
    server.maxHeadersCount = parserHeaderLimit(limits.maxHeaderCount)
    // Idle streams (SSE between events, a quiet WebSocket) are legitimate; keep-alive idling is bounded above.
    server.timeout = 0
    const linger = Math.min(MAX_LINGER_MS, limits.headersTimeoutMs)
    const refused = (code: string, status: number, reason?: string) =>
      publishRefused({ listener: name, direction, code, status, ...(reason === undefined ? {} : { reason }) })
    server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
      // Requests pipelined before the malformed one are still being answered: the refusal goes out after them
      // (RFC 9112 §9.3.2), or the client would take it for the first one's answer.
      // A refusal inside the body of the last request handed over is that request's own answer: it goes out now.
      const pipelined = socket as PipelinedSocket
      const open = pipelined[OPEN_ANSWERS] ?? 0
      if (
        open > 0 &&
        pipelined[LAST_RESPONSE]?.req.complete === true &&
        err.code !== 'ECONNRESET' &&
        err.code !== 'HPE_CLOSED_CONNECTION'
      ) {
        pipelined[REFUSAL_AFTER_ANSWERS] ??= () => {
          const answer = answerClientError(err, socket, linger, true)
          if (answer !== undefined) refused(answer.code, answer.status, answer.reason)
        }
        return
      }
      // Nothing is being answered on this connection (bytes written before belong to finished answers), or only
      // the request whose body broke, and its answer has not started: the refusal is its answer.
      const last = pipelined[LAST_RESPONSE]
      const free = open === 0 || (open === 1 && last !== undefined && !last.headersSent)
      const answer = answerClientError(err, socket, linger, free)
      if (answer !== undefined) refused(answer.code, answer.status, answer.reason)
    })
    // Node's maxConnections drops the excess without a word; the count is kept here so the excess is told why.
    const httpEvent = server instanceof TlsServer ? 'secureConnection' : 'connection'
    const http = server.listeners(httpEvent) as ((socket: Duplex) => void)[]
    server.removeAllListeners(httpEvent)
    // The limit below is checked once a connection is usable (a TLS handshake done), so the excess can be told why;
    // until then each connection holds a TLS socket (~22 KB). Past twice the limit they are closed as accepted, or
    // connections that never finish a handshake would take the process's memory before their timeout.
    // Node closes those before any TLS socket exists ('drop'), so they are not miscounted as peers hanging up.
    server.maxConnections = 2 * limits.maxConnections
    server.on('drop', () => refused('SVD_OVERLOADED', 0, 'ACCEPT_LIMIT'))
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket)
      publishConnection({ listener: name, direction, event: 'open' })
      socket.once('close', () => {
        this.#sockets.delete(socket)
        publishConnection({ listener: name, direction, event: 'close' })
      })
    })
    server.on(httpEvent, (socket: Duplex) => {
      if (socket.destroyed) return
      if (this.#sockets.size > limits.maxConnections) {
        const err = new SvidecarError(
          'SVD_OVERLOADED',
          `listener ${name} is at its limit of ${limits.maxConnections} connections`,
        )
        refused(err.code, err.status)
        socket.on('error', () => {})
        socket.resume()
        writeRawError(socket, err)
        lingerThenClose(socket, linger)
        return
      }
      for (const listener of http) listener.call(server, socket)
    })
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      const err = new SvidecarError('SVD_REQUEST_UNSUPPORTED', 'CONNECT is not proxied')
      refused(err.code, err.status, 'CONNECT')
      socket.on('error', () => {})
      writeRawError(socket, err)
      lingerThenClose(socket, linger)
    })
    // Without a listener Node answers 417 itself, in its own format.
    server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      const err = new SvidecarError(
        'SVD_REQUEST_EXPECTATION_FAILED',
        'the only expectation the sidecar meets is "100-continue"',
        { reason: 'EXPECT' },
      )
      refused(err.code, err.status, err.reason)
      res.setHeader('connection', 'close')
      sendError(res, err)
      req.resume()
    })
    // server.timeout is 0, so a socket times out only when Node's keep-alive timer runs out between requests.
    server.on('timeout', (socket: Duplex) => {
      refused('SVD_CONNECTION_IDLE', 0, 'KEEP_ALIVE_IDLE')
      socket.destroy()
    })
  }

  /** Hands every request and upgrade to `pipeline`, each as the exchange `exchange` makes for it. */
  serve(pipeline: Pipeline, exchange: (req: IncomingMessage, upgrade: boolean) => Exchange): void {
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      // A draining listener answers what is in flight and tells each client not to send more on this connection.
      if (this.#draining) res.setHeader('connection', 'close')
      const socket = req.socket as PipelinedSocket
      socket[OPEN_ANSWERS] = (socket[OPEN_ANSWERS] ?? 0) + 1
      socket[LAST_RESPONSE] = res
      res.once('close', () => answered(socket))
      pipeline.request(exchange(req, false), res)
    })
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      pipeline.upgrade(exchange(req, true), socket, head)
    })
  }

  get draining(): boolean {
    return this.#draining
  }

  get address(): HostPort {
    const a = this.server.address() as AddressInfo
    return { host: a.address, port: a.port }
  }

  async listen(address: HostPort): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err)
      this.server.once('error', onError)
      this.server.listen(address.port, listenHost(address.host), () => {
        this.server.off('error', onError)
        resolve()
      })
    })
  }

  /** Stops accepting, lets in-flight requests finish, and cuts what remains at the deadline. */
  close(deadlineMs: number): Promise<void> {
    if (this.#closing) return this.#closing
    this.#draining = true
    this.#closing = new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.#closeAll(), deadlineMs)
      timer.unref()
      // Connections that finish their request while draining become idle: close them as they do.
      const sweep = setInterval(() => this.server.closeIdleConnections(), 50)
      sweep.unref()
      // close() stops the listener and, since Node 19, closes idle keep-alive connections at once.
      this.server.close(() => {
        clearTimeout(timer)
        clearInterval(sweep)
        resolve()
      })
      this.server.closeIdleConnections()
    })
    return this.#closing
  }

  destroy(): void {
    this.#draining = true
    this.server.close()
    this.#closeAll()
  }

  #closeAll(): void {
    this.server.closeAllConnections()
    for (const socket of this.#sockets) socket.destroy()
  }
}

// Per connection: answers to requests Node has handed over that are not finished yet, and a parser refusal
// waiting for them.
const OPEN_ANSWERS = Symbol('svidecar.openAnswers')
const REFUSAL_AFTER_ANSWERS = Symbol('svidecar.refusalAfterAnswers')
const LAST_RESPONSE = Symbol('svidecar.lastResponse')

interface PipelinedSocket {
  [OPEN_ANSWERS]?: number
  [REFUSAL_AFTER_ANSWERS]?: (() => void) | undefined
  [LAST_RESPONSE]?: ServerResponse
}

function answered(socket: PipelinedSocket): void {
  const open = (socket[OPEN_ANSWERS] ?? 1) - 1
  socket[OPEN_ANSWERS] = open
  if (open > 0) return
  const refusal = socket[REFUSAL_AFTER_ANSWERS]
  if (refusal === undefined) return
  socket[REFUSAL_AFTER_ANSWERS] = undefined
  refusal()
}

/**
 * Node's parser refused the request: answer in our format, then close (the stream may be out of step).
 * Returns what was answered, or undefined when the socket was only closed (the client left, or a response
 * had already started). `free`: no answer is under way on the connection, so bytes written before belong to
 * finished answers, not to one this would cut into.
 */
function answerClientError(
  err: Error & { code?: string; rawPacket?: unknown; bytesParsed?: unknown },
  socket: Socket,
  lingerMs: number,
  free: boolean,
): SvidecarError | undefined {
  // Bytes after a request that carried Connection: close (RFC 9112 §9.6: not processed as requests). The answers
  // to the requests before them are still on their way, in order; Node closes once the last one is written. An
  // answer here would go out ahead of them, and the client would take it for the first request's.
  if (err.code === 'HPE_CLOSED_CONNECTION' && !socket.destroyed) return undefined
  // Destroyed already: a TLS handshake error, refused and counted by ServerTls (tls/server-tls.ts).
  if (err.code === 'ECONNRESET' || (socket.bytesWritten > 0 && !free) || socket.destroyed) {
    socket.destroy()
    return undefined
  }
  const method = err.code === 'HPE_INVALID_METHOD' ? unknownMethod(err) : undefined
  const answer =
    err.code === 'HPE_HEADER_OVERFLOW' && overflowInRequestLine(err)
      ? new SvidecarError(
          'SVD_REQUEST_URI_TOO_LONG',
          'the request target is longer than the request head may be',
          {
            reason: err.code,
          },
        )
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? new SvidecarError(
            'SVD_REQUEST_HEADERS_TOO_LARGE',
            'request headers exceed the size or count limit',
            {
              reason: err.code,
            },
          )
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new SvidecarError('SVD_REQUEST_TIMEOUT', 'the request did not arrive in time', {
              reason: err.code,
            })
          : method !== undefined
            ? new SvidecarError(
                'SVD_REQUEST_UNSUPPORTED',
                `method "${method}" is not supported; method names are case-sensitive (GET, not get)`,
                { reason: 'UNKNOWN_METHOD' },
              )
            : new SvidecarError('SVD_REQUEST_INVALID', 'the request is not valid HTTP/1.1', {
                reason: err.code ?? 'PARSE',
              })
  writeRawError(socket, answer)
  lingerThenClose(socket, lingerMs)
  return answer
}

/**
 * end() alone leaves a half-open socket to a client that never hangs up (the HTTP server allows half-open
 * connections): give the client a moment to read the answer, then close. Waiting for its FIN instead of
 * closing at once keeps unread request bytes from turning the close into a reset that would eat the answer.
 */
function lingerThenClose(socket: Duplex, lingerMs: number): void {
  if (socket.destroyed) return
  const timer = setTimeout(() => socket.destroy(), lingerMs)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
  socket.once('end', () => socket.destroy())
}
