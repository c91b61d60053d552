/**
 * WebSocket forwarding with `ws` on both sides: the upstream connection is
 * opened first (over mTLS when the upstream is a peer sidecar), and only when
 * it is accepted does the client's upgrade complete, so a refused upstream
 * becomes a clear HTTP error rather than a socket that opens and dies.
 * Messages pass one by one with back-pressure; close codes and reasons cross
 * over; each side answers its own pings.
 */
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer } from 'ws'
import { SvidecarError } from '../errors/index.ts'
import { writeRawError } from './raw-error.ts'
import { upstreamError } from './upstream-errors.ts'

export interface WebSocketTarget {
  /** ws:// or wss:// URL of the upstream, path and query included. */
  url: string
  upstream: string
  /** Headers to send (already sanitised), without the WebSocket handshake headers ws sets itself. */
  headers: Record<string, string | string[]>
  /** For peer sidecars: the mTLS connector, in node:http's createConnection shape. */
  createConnection?: (options: object, callback: (err: Error | null, socket: Duplex) => void) => undefined
  maxPayload: number
  handshakeTimeoutMs: number
}

// Above this many bytes queued towards a slow side, stop reading from the other.
const HIGH_WATER = 1024 * 1024

const HANDSHAKE_HEADERS = new Set([
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-accept',
  'sec-websocket-protocol',
  'connection',
  'upgrade',
])

/** The forwarded header list as an object for ws, minus what the WebSocket handshake itself owns. */
export function upgradeHeaders(flat: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = (flat[i] as string).toLowerCase()
    if (HANDSHAKE_HEADERS.has(name)) continue
    const value = flat[i + 1] as string
    const prev = out[name]
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value]
  }
  return out
}

export function relayWebSocket(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: WebSocketTarget,
  onEnd?: (status: number, code: string | undefined) => void,
): void {
  const protocols = (req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
  let settled = false
  const fail = (err: SvidecarError) => {
    if (settled) return
    settled = true
    writeRawError(socket, err)
    onEnd?.(err.status, err.code)
  }
  // A client that leaves during the upstream handshake takes the upstream attempt with it.
  socket.on('error', () => upstream.terminate())
  socket.on('close', () => {
    if (!settled) upstream.terminate()
  })

  const upstream = new WebSocket(target.url, protocols, {
    headers: target.headers,
    perMessageDeflate: false,
    maxPayload: target.maxPayload,
    handshakeTimeout: target.handshakeTimeoutMs,
    followRedirects: false,
    ...(target.createConnection === undefined ? {} : { createConnection: target.createConnection as never }),
  })
  upstream.on('unexpected-response', (_request, response) => {
    response.resume()
    fail(
      new SvidecarError(
        'SVD_UPSTREAM_PROTOCOL',
        `upstream ${target.upstream} refused the WebSocket upgrade (${response.statusCode})`,
        {
          reason: `STATUS_${response.statusCode}`,
        },
      ),
    )
    upstream.terminate()
  })
  upstream.on('error', (err) => {
    if (!settled) fail(upstreamError(err, target.upstream))
  })
  upstream.on('open', () => {
    if (settled || socket.destroyed) {
      upstream.terminate()
      return
    }
    settled = true
    const wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: target.maxPayload,
      handleProtocols: () => upstream.protocol || false,
    })
    wss.handleUpgrade(req, socket as Socket, head, (client) => {
      onEnd?.(101, undefined)
      pipe(client, upstream)
      pipe(upstream, client)
    })
  })
}

function pipe(from: WebSocket, to: WebSocket): void {
  from.on('message', (data, isBinary) => {
    if (to.readyState !== WebSocket.OPEN) return
    to.send(data, { binary: isBinary }, () => {
      if (to.bufferedAmount < HIGH_WATER / 2 && from.isPaused) from.resume()
    })
    if (to.bufferedAmount > HIGH_WATER) from.pause()
  })
  from.on('close', (code, reason) => {
    if (to.readyState === WebSocket.OPEN || to.readyState === WebSocket.CONNECTING) {
      // 1005 (no status) and 1006 (abnormal) are never sent on the wire; map them to what may be.
      if (code === 1005) to.close()
      else if (code === 1006) to.terminate()
      else to.close(code, reason)
    }
  })
  from.on('error', () => to.terminate())
}
