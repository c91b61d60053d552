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
import type { WebSocket } from 'ws'
import { SvidecarError } from '../errors/index.ts'
import { upstreamError } from '../errors/upstream-errors.ts'
import { publishUpstreamFailed } from '../observe/events.ts'
import { writeRawError } from './raw-error.ts'

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
  /** Per-message hooks of the pipeline's stages (a lens that decides every frame), in order. */
  frames?: readonly FrameFilter[]
}

/**
 * Sees each text message of a relayed WebSocket. `fromClient` says whether to forward it (and may answer the
 * client with `reply`); `fromUpstream` returns the text to forward, or undefined to drop it. A promise holds
 * that direction's later messages until it settles, so order is kept. A binary message on a socket with
 * filters closes it (1003): what cannot be read is not relayed.
 */
export interface FrameFilter {
  fromClient?(text: string, reply: (text: string) => void): boolean | Promise<boolean>
  fromUpstream?(text: string): string | undefined | Promise<string | undefined>
}

// ws is loaded on the first upgrade: a sidecar that never relays a WebSocket never pays its memory.
let wsModule: Promise<typeof import('ws')> | undefined
const loadWs = () => {
  wsModule ??= import('ws')
  return wsModule
}

// WebSocket readyState values (RFC 6455 client states as the WHATWG API numbers them).
const CONNECTING = 0
const OPEN = 1

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
    publishUpstreamFailed({
      upstream: target.upstream,
      code: err.code,
      ...(err.reason === undefined ? {} : { reason: err.reason }),
      status: err.status,
      midResponse: false,
      ...(err.cause === undefined ? {} : { cause: err.cause }),
    })
    writeRawError(socket, err)
    onEnd?.(err.status, err.code)
  }
  let upstream: WebSocket | undefined
  // A client that leaves during the upstream handshake takes the upstream attempt with it.
  socket.on('error', () => upstream?.terminate())
  socket.on('close', () => {
    if (!settled) upstream?.terminate()
  })
  const claim = () => {
    if (settled || socket.destroyed) return false
    settled = true
    return true
  }
  loadWs().then(
    (ws) => {
      if (socket.destroyed) {
        if (claim()) onEnd?.(499, 'CLIENT_ABORTED')
        return
      }
      try {
        upstream = connectUpstream(ws, { req, socket, head, target, protocols, fail, claim, onEnd })
      } catch (err) {
        // ws throws synchronously on what it cannot send (a URL, a header): nothing reached the upstream, so it is
        // our failure; uncaught inside this promise it would be an unhandled rejection, which ends the process.
        fail(
          new SvidecarError('SVD_INTERNAL', 'internal error', {
            reason: 'WEBSOCKET_CLIENT_REFUSED',
            cause: err,
          }),
        )
      }
    },
    (err: unknown) => fail(upstreamError(err as Error, target.upstream)),
  )
}

interface Relay {
  req: IncomingMessage
  socket: Duplex
  head: Buffer
  target: WebSocketTarget
  protocols: string[]
  fail: (err: SvidecarError) => void
  /** True, once, when the relay may go ahead: nothing failed and the client is still there. */
  claim: () => boolean
  onEnd: ((status: number, code: string | undefined) => void) | undefined
}

function connectUpstream(ws: typeof import('ws'), relay: Relay): WebSocket {
  const { req, socket, head, target, protocols, fail, claim, onEnd } = relay
  const upstream = new ws.WebSocket(target.url, protocols, {
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
  upstream.on('error', (err) => fail(upstreamError(err, target.upstream, 'websocket-handshake')))
  upstream.on('open', () => {
    if (!claim()) {
      upstream.terminate()
      return
    }
    const wss = new ws.WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: target.maxPayload,
      handleProtocols: () => upstream.protocol || false,
    })
    wss.handleUpgrade(req, socket as Socket, head, (client) => {
      onEnd?.(101, undefined)
      const filters = target.frames ?? []
      if (filters.length === 0) {
        pipe(client, upstream)
        pipe(upstream, client)
        return
      }
      pipe(client, upstream, clientGate(filters, client))
      pipe(upstream, client, upstreamGate(filters))
    })
  })
  return upstream
}

/** What to send on for one message: the text, or undefined to drop it. */
type Gate = (text: string) => string | undefined | Promise<string | undefined>

function clientGate(filters: readonly FrameFilter[], client: WebSocket): Gate {
  const reply = (text: string) => {
    if (client.readyState === OPEN) client.send(text)
  }
  return (text) => {
    const step = (i: number): string | undefined | Promise<string | undefined> => {
      for (; i < filters.length; i++) {
        const f = (filters[i] as FrameFilter).fromClient
        if (f === undefined) continue
        const ok = f(text, reply)
        if (ok instanceof Promise) {
          const next = i + 1
          return ok.then((yes) => (yes ? step(next) : undefined))
        }
        if (!ok) return undefined
      }
      return text
    }
    return step(0)
  }
}

function upstreamGate(filters: readonly FrameFilter[]): Gate {
  return (text) => {
    const step = (t: string | undefined, i: number): string | undefined | Promise<string | undefined> => {
      for (; i < filters.length && t !== undefined; i++) {
        const f = (filters[i] as FrameFilter).fromUpstream
        if (f === undefined) continue
        const out: string | undefined | Promise<string | undefined> = f(t)
        if (out instanceof Promise) {
          const next = i + 1
          return out.then((o) => step(o, next))
        }
        t = out
      }
      return t
    }
    return step(text, 0)
  }
}

function pipe(from: WebSocket, to: WebSocket, gate?: Gate): void {
  // Messages a gate still decides on: later ones wait behind them.
  let held: Promise<void> | undefined
  const send = (data: Buffer | ArrayBuffer | Buffer[] | string, isBinary: boolean) => {
    if (to.readyState !== OPEN) return
    to.send(data, { binary: isBinary }, () => {
      if (to.bufferedAmount < HIGH_WATER / 2 && from.isPaused) from.resume()
    })
    if (to.bufferedAmount > HIGH_WATER) from.pause()
  }
  from.on('message', (data, isBinary) => {
    if (gate === undefined) {
      send(data, isBinary)
      return
    }
    if (isBinary) {
      from.close(1003, 'binary messages are not relayed on this socket')
      return
    }
    const text = Array.isArray(data)
      ? Buffer.concat(data).toString('utf8')
      : Buffer.from(data as Buffer).toString('utf8')
    const run = () => {
      const out = gate(text)
      if (!(out instanceof Promise)) {
        if (out !== undefined) send(out, false)
        return undefined
      }
      return out.then(
        (o) => {
          if (o !== undefined) send(o, false)
        },
        () => from.close(1011, 'the message could not be decided'),
      )
    }
    // While a decision is pending, reading from this side stops: the queue behind it stays short.
    const settle = (mine: Promise<void>) => () => {
      if (held !== mine) return
      held = undefined
      if (from.isPaused && to.bufferedAmount < HIGH_WATER / 2) from.resume()
    }
    if (held === undefined) {
      const r = run()
      if (r === undefined) return
      const mine: Promise<void> = r.then(() => settle(mine)())
      held = mine
      from.pause()
      return
    }
    const mine: Promise<void> = held.then(run).then(() => settle(mine)())
    held = mine
  })
  from.on('close', (code, reason) => {
    if (to.readyState === OPEN || to.readyState === CONNECTING) {
      // 1005 (no status) and 1006 (abnormal) are never sent on the wire; map them to what may be.
      if (code === 1005) to.close()
      else if (code === 1006) to.terminate()
      else to.close(code, reason)
    }
  })
  from.on('error', () => to.terminate())
}
