/**
 * The local app behind an inbound sidecar: echoes requests, counts bodies,
 * streams SSE on command, crashes on command. It records what reached it,
 * so tests can prove what did not.
 */
import { EventEmitter, once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'

export interface SeenRequest {
  method: string
  url: string
  headers: Record<string, string | string[] | undefined>
  rawHeaders: string[]
}

export class EchoApp {
  readonly server: Server
  readonly seen: SeenRequest[] = []
  /** Emits 'aborted' when a client of the app went away mid-request. */
  readonly events = new EventEmitter()
  #sse: ServerResponse | undefined
  readonly #hanging: ServerResponse[] = []

  private constructor() {
    this.server = createServer((req, res) => this.#handle(req, res))
    // WebSocket at /ws: first a hello naming the peer the sidecar vouched for, then an echo of every message.
    const wss = new WebSocketServer({
      server: this.server,
      path: '/ws',
      handleProtocols: (p) => [...p][0] ?? false,
    })
    wss.on('connection', (ws, req) => {
      ws.send(JSON.stringify({ peer: req.headers['x-spiffe-id'] ?? null, protocol: ws.protocol }))
      ws.on('message', (data, isBinary) => {
        if (!isBinary && data.toString() === 'close-please') ws.close(4001, 'asked to')
        else ws.send(data, { binary: isBinary })
      })
    })
  }

  static async start(): Promise<EchoApp> {
    const app = new EchoApp()
    app.server.listen(0, '127.0.0.1')
    await once(app.server, 'listening')
    return app
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  /** Writes one SSE event to the open /sse stream. */
  sendEvent(data: string): void {
    this.#sse?.write(`data: ${data}\n\n`)
  }

  /** Answers every request held at /hang. */
  finishHanging(status: number): void {
    for (const res of this.#hanging.splice(0)) {
      res.writeHead(status, { 'content-type': 'text/plain' })
      res.end('done')
    }
  }

  endEvents(): void {
    this.#sse?.end()
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise((r) => this.server.close(r))
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    this.seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: { ...req.headers },
      rawHeaders: [...req.rawHeaders],
    })
    const url = new URL(req.url ?? '/', 'http://app')
    req.on('close', () => {
      if (!res.writableFinished) this.events.emit('aborted', url.pathname)
    })
    switch (url.pathname) {
      case '/echo': {
        res.writeHead(200, {
          'content-type': req.headers['content-type'] ?? 'application/octet-stream',
          'x-seen-peer': String(req.headers['x-spiffe-id'] ?? ''),
        })
        req.pipe(res)
        return
      }
      case '/count': {
        let bytes = 0
        req.on('data', (chunk: Buffer) => {
          bytes += chunk.length
        })
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end(JSON.stringify({ bytes }))
        })
        return
      }
      case '/bytes': {
        // A large response produced lazily, paced by the reader.
        let left = Number(url.searchParams.get('n') ?? '0')
        const chunk = Buffer.alloc(64 * 1024, 0x61)
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) })
        const pump = () => {
          while (left > 0) {
            const piece = left >= chunk.length ? chunk : chunk.subarray(0, left)
            left -= piece.length
            if (!res.write(piece)) {
              res.once('drain', pump)
              return
            }
          }
          res.end()
        }
        pump()
        return
      }
      case '/sse': {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
        res.flushHeaders()
        this.#sse = res
        this.events.emit('sse-open')
        return
      }
      case '/hang':
        this.#hanging.push(res)
        this.events.emit('hanging')
        return
      case '/crash': {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000000' })
        res.write('partial body that will never be finished')
        setImmediate(() => req.socket.destroy())
        return
      }
      default:
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({ method: req.method, url: req.url, peer: req.headers['x-spiffe-id'] ?? null }),
        )
    }
  }
}
