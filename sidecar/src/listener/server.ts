/**
 * What every proxy listener shares: Node's HTTP server hardened with our
 * limits, malformed-request answers in the sidecar's error format, and a
 * graceful close that drains in-flight requests until a deadline.
 */
import type { Server, ServerOptions } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { SvidecarError } from '../errors/index.ts'
import { writeRawError } from '../forwarder/raw-error.ts'
import { publishConnection } from '../observe/events.ts'

export interface ListenerLimits {
  maxHeaderBytes: number
  maxHeaderCount: number
  headersTimeoutMs: number
  /** 0 = none. */
  requestTimeoutMs: number
  idleTimeoutMs: number
  maxConnections: number
}

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
  }
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
    server.maxConnections = limits.maxConnections
    // One more than the limit, so the guard sees the excess instead of Node silently dropping it.
    server.maxHeadersCount = limits.maxHeaderCount + 1
    // Idle streams (SSE between events, a quiet WebSocket) are legitimate; keep-alive idling is bounded above.
    server.timeout = 0
    server.on('clientError', (err: Error & { code?: string }, socket: Socket) =>
      answerClientError(err, socket),
    )
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket)
      publishConnection({ listener: name, direction, event: 'open' })
      socket.once('close', () => {
        this.#sockets.delete(socket)
        publishConnection({ listener: name, direction, event: 'close' })
      })
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
      this.server.listen(address.port, address.host, () => {
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

/** Node's parser refused the request: answer in our format, then close (the stream may be out of step). */
function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.bytesWritten > 0) {
    socket.destroy()
    return
  }
  writeRawError(
    socket,
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new SvidecarError('SVD_REQUEST_HEADERS_TOO_LARGE', 'request headers exceed the size limit', {
          reason: err.code,
        })
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new SvidecarError('SVD_REQUEST_TIMEOUT', 'the request did not arrive in time', { reason: err.code })
        : new SvidecarError('SVD_REQUEST_INVALID', 'the request is not valid HTTP/1.1', {
            reason: err.code ?? 'PARSE',
          }),
  )
}
