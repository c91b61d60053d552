/**
 * The HTTP side of one bridged message flow: a POST's reply, which becomes
 * JSON or an SSE stream depending on what the child sends first, and the
 * session's GET stream for messages that relate to no request.
 */
import type { ServerResponse } from 'node:http'
import type { JsonRpcMessage } from './jsonrpc.ts'

/** Comment lines keep idle streams open through proxies that time out silent connections. */
const KEEPALIVE_MS = 15_000

function sseEvent(m: JsonRpcMessage): string {
  return `event: message\ndata: ${JSON.stringify(m)}\n\n`
}

function startSse(res: ServerResponse, headers: Record<string, string>): void {
  res.writeHead(200, {
    ...headers,
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no',
  })
  res.flushHeaders()
}

/** The session's GET stream: server requests and notifications that no open POST is waiting for. */
export class EventStream {
  readonly #res: ServerResponse
  readonly #keepalive: NodeJS.Timeout
  #open = true

  constructor(res: ServerResponse, headers: Record<string, string>, onClose: () => void) {
    this.#res = res
    startSse(res, headers)
    this.#keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS)
    this.#keepalive.unref()
    res.once('close', () => {
      this.#open = false
      clearInterval(this.#keepalive)
      onClose()
    })
  }

  get open(): boolean {
    return this.#open
  }

  send(m: JsonRpcMessage): void {
    if (this.#open) this.#res.write(sseEvent(m))
  }

  end(): void {
    if (!this.#open) return
    this.#open = false
    clearInterval(this.#keepalive)
    this.#res.end()
  }
}

export interface Accepts {
  json: boolean
  sse: boolean
}

/**
 * A POST carrying requests. Its reply waits for the child's first message:
 * when that is the (last) response, the reply is plain JSON; when it is a
 * message related to a request (progress), the reply turns into an SSE stream
 * that carries it and the responses after it, then ends.
 */
export class PostReply {
  readonly #res: ServerResponse
  readonly #accepts: Accepts
  readonly #batch: boolean
  readonly #headers: Record<string, string>
  #waiting: number
  #mode: 'undecided' | 'sse' | 'done' = 'undecided'
  #held: JsonRpcMessage[] = []
  #gone = false

  constructor(
    res: ServerResponse,
    options: { accepts: Accepts; batch: boolean; requests: number; headers: Record<string, string> },
  ) {
    this.#res = res
    this.#accepts = options.accepts
    this.#batch = options.batch
    this.#waiting = options.requests
    this.#headers = options.headers
    res.once('close', () => {
      if (this.#mode !== 'done') this.#gone = true
    })
  }

  /** False once the client hung up or the reply ended: send elsewhere. */
  get open(): boolean {
    return !this.#gone && this.#mode !== 'done'
  }

  /** Whether a message unrelated to this POST's requests may ride on it (an SSE reply still open). */
  get canStream(): boolean {
    return this.open && this.#accepts.sse
  }

  /** Sends a message related to one of the requests; false when this reply cannot carry it. */
  related(m: JsonRpcMessage): boolean {
    if (!this.canStream) return false
    if (this.#mode === 'undecided') {
      startSse(this.#res, this.#headers)
      this.#mode = 'sse'
      for (const held of this.#held) this.#res.write(sseEvent(held))
      this.#held = []
    }
    this.#res.write(sseEvent(m))
    return true
  }

  /** One request's response; false when the client is gone and it must go elsewhere. */
  respond(m: JsonRpcMessage): boolean {
    if (!this.open) return false
    this.#waiting--
    if (this.#mode === 'sse') {
      this.#res.write(sseEvent(m))
      if (this.#waiting <= 0) this.#finish()
      return true
    }
    this.#held.push(m)
    if (this.#waiting > 0) return true
    const body = JSON.stringify(this.#batch ? this.#held : this.#held[0])
    if (this.#accepts.json) {
      this.#res.writeHead(200, {
        ...this.#headers,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
      })
      this.#res.end(body)
    } else {
      startSse(this.#res, this.#headers)
      for (const held of this.#held) this.#res.write(sseEvent(held))
      this.#res.end()
    }
    this.#mode = 'done'
    this.#held = []
    return true
  }

  #finish(): void {
    this.#mode = 'done'
    this.#res.end()
  }
}
