/**
 * `svidecar mcp connect URL`: a stdio MCP server for an agent that speaks only
 * stdio. Each line on stdin is POSTed to a remote MCP server over Streamable
 * HTTP (session era), normally through the agent's own outbound listener;
 * every JSON-RPC message that comes back (a JSON body, the events of an SSE
 * reply, the session's GET stream) is written to stdout as one line. Logs go
 * to stderr only: stdout is the protocol.
 *
 * When the remote session disappears (404: it expired, or the stdio server
 * behind a serve-stdio bridge exited), the bridge replays the agent's
 * `initialize` once to get a new session and resends the message, so the
 * agent keeps working; the server-side state of the old session is lost, and
 * the log says so.
 */
import type { Readable, Writable } from 'node:stream'
import { Agent, request } from 'undici'
import type { Logger } from '../observe/log.ts'
import {
  asMessage,
  bridgeError,
  INVALID_REQUEST,
  isId,
  type JsonRpcId,
  type JsonRpcMessage,
  kindOf,
  PARSE_ERROR,
  preview,
  protocolError,
  trailingId,
} from './jsonrpc.ts'
import { LineSplitter } from './lines.ts'
import { SseReader } from './sse.ts'

export interface ConnectOptions {
  url: string
  /** Extra request headers (e.g. an Authorization the remote wants); never logged. */
  headers: Record<string, string>
  maxLineBytes: number
  input: Readable
  output: Writable
  logger: Logger
}

const ACCEPT = 'application/json, text/event-stream'
const RETRY_MIN_MS = 500
const RETRY_MAX_MS = 30_000
const DELETE_TIMEOUT_MS = 2000

export class StdioConnect {
  readonly #o: ConnectOptions
  readonly #log: Logger
  readonly #dispatcher = new Agent({ headersTimeout: 0, bodyTimeout: 0 })
  readonly #closing = new AbortController()
  #sessionId: string | undefined
  #protocolVersion: string | undefined
  #initialize: JsonRpcMessage | undefined
  #initialized: JsonRpcMessage | undefined
  #reinit: Promise<boolean> | undefined
  #stream: AbortController | undefined
  #order: Promise<void> = Promise.resolve()
  #reinitCount = 0

  constructor(options: ConnectOptions) {
    this.#o = options
    this.#log = options.logger
  }

  /** Runs until stdin ends (or stdout breaks); then ends the remote session and resolves. */
  async run(): Promise<void> {
    const { input, output } = this.#o
    const ended = new Promise<void>((resolve) => {
      const lines = new LineSplitter(this.#o.maxLineBytes, {
        line: (text) => this.#fromAgent(text),
        oversized: (info) => {
          this.#log.warn('a message from the agent is over the line cap: dropped', {
            code: 'SVD_BRIDGE_MESSAGE_TOO_LARGE',
            bytes: info.bytes,
            maxLineBytes: this.#o.maxLineBytes,
          })
          const id = trailingId(info.tail) ?? leadingId(info.head)
          this.#write(
            bridgeError(
              id ?? null,
              'SVD_BRIDGE_MESSAGE_TOO_LARGE',
              `the message is ${info.bytes} bytes, over the ${this.#o.maxLineBytes}-byte line cap; it was not sent`,
            ),
          )
        },
      })
      input.on('data', (chunk: Buffer) => lines.push(chunk))
      input.once('end', () => {
        lines.end()
        resolve()
      })
      input.once('error', () => resolve())
      output.once('error', (err) => {
        this.#log.warn('stdout closed: stopping', { reason: err.message })
        resolve()
      })
      this.#closing.signal.addEventListener('abort', () => resolve())
    })
    await ended
    this.#log.debug('stdin closed: ending the session')
    await this.#shutdown()
  }

  async #shutdown(): Promise<void> {
    this.#stream?.abort()
    await this.#order.catch(() => {})
    this.#closing.abort()
    const sessionId = this.#sessionId
    this.#sessionId = undefined
    if (sessionId !== undefined) {
      try {
        const res = await request(this.#o.url, {
          method: 'DELETE',
          headers: this.#headers(sessionId),
          dispatcher: this.#dispatcher,
          signal: AbortSignal.timeout(DELETE_TIMEOUT_MS),
        })
        await res.body.dump()
      } catch (err) {
        this.#log.debug('ending the remote session failed', { reason: (err as Error).message })
      }
    }
    await this.#dispatcher.destroy().catch(() => {})
  }

  #write(m: JsonRpcMessage | JsonRpcMessage[]): void {
    const out = this.#o.output
    if (out.destroyed || out.writableEnded) return
    out.write(`${JSON.stringify(m)}\n`)
  }

  #fromAgent(text: string): void {
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      this.#log.warn('the agent sent a line that is not JSON: answered with a parse error', {
        line: preview(text),
      })
      this.#write(protocolError(null, PARSE_ERROR, 'Parse error: the line is not JSON'))
      return
    }
    const items = Array.isArray(value) ? value : [value]
    const messages: JsonRpcMessage[] = []
    for (const item of items) {
      const m = asMessage(item)
      if (typeof m === 'string') {
        const id = (item as { id?: unknown } | null)?.id
        this.#log.warn(`the agent sent an invalid JSON-RPC message (${m}): answered with an error`)
        this.#write(protocolError(isId(id) ? id : null, INVALID_REQUEST, `Invalid Request: ${m}`))
        continue
      }
      messages.push(m)
    }
    if (messages.length === 0) return
    const body: JsonRpcMessage | JsonRpcMessage[] = Array.isArray(value)
      ? messages
      : (messages[0] as JsonRpcMessage)
    const hasRequest = messages.some((m) => kindOf(m) === 'request')
    for (const m of messages) {
      if (m.method === 'initialize' && kindOf(m) === 'request') this.#initialize = m
      if (m.method === 'notifications/initialized') this.#initialized = m
    }
    // Sends leave in the agent's order. A notification or response is awaited before the next send
    // (it is answered at once with 202); a request is not, so a slow tool call holds up nothing.
    const before = this.#order
    const sent = before.then(() => this.#send(body, messages, true))
    this.#order = hasRequest && !this.#isInitialize(messages) ? before : sent
  }

  #isInitialize(messages: JsonRpcMessage[]): boolean {
    return messages.some((m) => m.method === 'initialize')
  }

  #headers(sessionId = this.#sessionId): Record<string, string> {
    return {
      ...this.#o.headers,
      accept: ACCEPT,
      ...(sessionId === undefined ? {} : { 'mcp-session-id': sessionId }),
      ...(this.#protocolVersion === undefined ? {} : { 'mcp-protocol-version': this.#protocolVersion }),
    }
  }

  async #send(
    body: JsonRpcMessage | JsonRpcMessage[],
    messages: JsonRpcMessage[],
    mayRecover: boolean,
  ): Promise<void> {
    if (this.#closing.signal.aborted) return
    const requestIds = messages.filter((m) => kindOf(m) === 'request').map((m) => m.id as JsonRpcId)
    const isInit = this.#isInitialize(messages)
    const fail = (message: string, data: Record<string, unknown>) => {
      for (const id of requestIds) this.#write(bridgeError(id, 'SVD_BRIDGE_UPSTREAM_FAILED', message, data))
    }
    const sentWith = this.#sessionId
    let res: Awaited<ReturnType<typeof request>>
    try {
      res = await request(this.#o.url, {
        method: 'POST',
        headers: { ...this.#headers(isInit ? undefined : sentWith), 'content-type': 'application/json' },
        body: JSON.stringify(body),
        dispatcher: this.#dispatcher,
        signal: this.#closing.signal,
      })
    } catch (err) {
      if (this.#closing.signal.aborted) return
      const reason = (err as Error & { code?: string }).code ?? (err as Error).message
      this.#log.error('the MCP server cannot be reached', { code: 'SVD_BRIDGE_UPSTREAM_FAILED', reason })
      fail(`the MCP server at ${this.#o.url} cannot be reached (${reason})`, { reason })
      return
    }
    const contentType = String(res.headers['content-type'] ?? '').toLowerCase()
    if (res.statusCode === 404 && sentWith !== undefined && !isInit && mayRecover) {
      await res.body.dump()
      if (await this.#recover(sentWith)) return this.#send(body, messages, false)
      fail('the MCP session ended and a new one could not be started', { status: 404 })
      return
    }
    if (res.statusCode >= 200 && res.statusCode < 300) {
      if (isInit) this.#adoptSession(res.headers['mcp-session-id'])
      if (res.statusCode === 202 || requestIds.length === 0) {
        await res.body.dump()
        if (messages.some((m) => m.method === 'notifications/initialized')) this.#openStream()
        return
      }
      const answered = new Set<string>()
      // A message over the line cap was dropped: the requests it may have answered are told so, not "no answer".
      let dropped: number | undefined
      const tooLarge = (bytes: number | undefined) => {
        dropped = Math.max(dropped ?? 0, bytes ?? 0)
      }
      const onMessage = (m: JsonRpcMessage) => {
        if (kindOf(m) === 'response' && isId(m.id)) answered.add(String(m.id))
        if (isInit && kindOf(m) === 'response') this.#adoptVersion(m)
        this.#write(m)
      }
      try {
        if (contentType.startsWith('text/event-stream'))
          await this.#readSse(res.body, onMessage, undefined, tooLarge)
        else await this.#readJson(res.body, onMessage, tooLarge)
      } catch (err) {
        if (this.#closing.signal.aborted) return
        this.#log.warn('the reply from the MCP server broke off', { reason: (err as Error).message })
      }
      const missing = requestIds.filter((id) => !answered.has(String(id)))
      const cap = this.#o.maxLineBytes
      for (const id of missing)
        this.#write(
          dropped !== undefined
            ? bridgeError(
                id,
                'SVD_BRIDGE_MESSAGE_TOO_LARGE',
                `the MCP server's answer is over the ${cap}-byte line cap; it was dropped`,
                dropped > cap ? { bytes: dropped, maxLineBytes: cap } : { maxLineBytes: cap },
              )
            : bridgeError(
                id,
                'SVD_BRIDGE_UPSTREAM_FAILED',
                'the MCP server ended its reply without answering this request',
                {
                  status: res.statusCode,
                },
              ),
        )
      return
    }
    // An HTTP error. The sidecars mark their own refusals; a JSON-RPC error body is the server's own.
    const text = await readText(res.body, 64 * 1024)
    const refusal =
      header(res.headers['x-svidecar-error']) ?? header(res.headers['x-svidecar-upstream-error'])
    const rpc = parseRpcError(text)
    this.#log.warn('the MCP server refused a message', {
      code: 'SVD_BRIDGE_UPSTREAM_FAILED',
      status: res.statusCode,
      ...(refusal === undefined ? {} : { refusal }),
    })
    for (const id of requestIds) {
      if (rpc !== undefined && (rpc.id === id || requestIds.length === 1)) {
        this.#write({ ...rpc, id })
        continue
      }
      const why =
        refusal ?? (rpc?.error?.message as string | undefined) ?? preview(text ?? '(body over 64 KiB)', 200)
      this.#write(
        bridgeError(
          id,
          'SVD_BRIDGE_UPSTREAM_FAILED',
          `the MCP server answered HTTP ${res.statusCode}: ${why}`,
          {
            status: res.statusCode,
            ...(refusal === undefined ? {} : { svidecarError: refusal }),
          },
        ),
      )
    }
  }

  #adoptSession(id: unknown): void {
    const sid = header(id)
    if (sid !== undefined && sid !== this.#sessionId) {
      this.#sessionId = sid
      this.#stream?.abort()
      this.#stream = undefined
    }
  }

  #adoptVersion(m: JsonRpcMessage): void {
    const v = (m.result as { protocolVersion?: unknown } | undefined)?.protocolVersion
    if (typeof v === 'string') this.#protocolVersion = v
  }

  /** A new session after the old one vanished: replays the agent's initialize once, whoever asks. */
  #recover(lost: string): Promise<boolean> {
    if (this.#sessionId !== lost) return Promise.resolve(this.#sessionId !== undefined)
    if (this.#reinit !== undefined) return this.#reinit
    this.#reinit = this.#reinitialize().finally(() => {
      this.#reinit = undefined
    })
    return this.#reinit
  }

  async #reinitialize(): Promise<boolean> {
    const init = this.#initialize
    this.#stream?.abort()
    this.#stream = undefined
    this.#sessionId = undefined
    if (init === undefined) return false
    this.#log.warn('the MCP session is gone (404): starting a new one; the old session state is lost', {
      code: 'SVD_BRIDGE_SESSION_NOT_FOUND',
    })
    const id = `svidecar-reinitialize-${++this.#reinitCount}`
    try {
      const res = await request(this.#o.url, {
        method: 'POST',
        headers: { ...this.#headers(undefined), 'content-type': 'application/json' },
        body: JSON.stringify({ ...init, id }),
        dispatcher: this.#dispatcher,
        signal: this.#closing.signal,
      })
      if (res.statusCode !== 200) {
        await res.body.dump()
        return false
      }
      let ok = false
      const take = (m: JsonRpcMessage) => {
        if (m.id === id && m.result !== undefined) ok = true
      }
      const type = String(res.headers['content-type'] ?? '')
      if (type.startsWith('text/event-stream')) await this.#readSse(res.body, take)
      else await this.#readJson(res.body, take)
      if (!ok) return false
      this.#adoptSession(res.headers['mcp-session-id'])
      const done = await request(this.#o.url, {
        method: 'POST',
        headers: { ...this.#headers(), 'content-type': 'application/json' },
        body: JSON.stringify(this.#initialized ?? { jsonrpc: '2.0', method: 'notifications/initialized' }),
        dispatcher: this.#dispatcher,
        signal: this.#closing.signal,
      })
      await done.body.dump()
      this.#openStream()
      return this.#sessionId !== undefined
    } catch (err) {
      this.#log.error('starting a new MCP session failed', { reason: (err as Error).message })
      return false
    }
  }

  async #readJson(
    body: AsyncIterable<Uint8Array>,
    onMessage: (m: JsonRpcMessage) => void,
    onOversized?: (bytes: number | undefined) => void,
  ): Promise<void> {
    const text = await readText(body, this.#o.maxLineBytes)
    if (text === undefined) {
      this.#log.warn('a JSON reply over the line cap: dropped', { code: 'SVD_BRIDGE_MESSAGE_TOO_LARGE' })
      onOversized?.(undefined)
      return
    }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      this.#log.warn('the MCP server sent a reply that is not JSON: dropped', { body: preview(text) })
      return
    }
    for (const item of Array.isArray(value) ? value : [value]) {
      const m = asMessage(item)
      if (typeof m === 'string')
        this.#log.warn(`the MCP server sent an invalid JSON-RPC message (${m}): dropped`)
      else onMessage(m)
    }
  }

  async #readSse(
    body: AsyncIterable<Uint8Array>,
    onMessage: (m: JsonRpcMessage) => void,
    onRetry?: (ms: number) => void,
    onOversized?: (bytes: number) => void,
  ): Promise<string | undefined> {
    const reader = new SseReader(this.#o.maxLineBytes, {
      event: (e) => {
        if (e.event !== 'message' || e.data === '') return
        let value: unknown
        try {
          value = JSON.parse(e.data)
        } catch {
          this.#log.warn('the MCP server sent an SSE event that is not JSON: dropped', {
            data: preview(e.data),
          })
          return
        }
        for (const item of Array.isArray(value) ? value : [value]) {
          const m = asMessage(item)
          if (typeof m === 'string')
            this.#log.warn(`the MCP server sent an invalid JSON-RPC message (${m}): dropped`)
          else onMessage(m)
        }
      },
      oversized: (bytes) => {
        this.#log.warn('an SSE event over the line cap: dropped', {
          code: 'SVD_BRIDGE_MESSAGE_TOO_LARGE',
          bytes,
        })
        onOversized?.(bytes)
      },
      ...(onRetry === undefined ? {} : { retry: onRetry }),
    })
    for await (const chunk of body) reader.push(chunk)
    return reader.lastEventId
  }

  /** The session's GET stream, for server messages outside any request; reopened when it drops. */
  #openStream(): void {
    if (this.#stream !== undefined || this.#sessionId === undefined) return
    const control = new AbortController()
    this.#stream = control
    const sessionId = this.#sessionId
    void (async () => {
      let lastEventId: string | undefined
      let delay = RETRY_MIN_MS
      while (!control.signal.aborted && this.#sessionId === sessionId) {
        try {
          const res = await request(this.#o.url, {
            method: 'GET',
            headers: {
              ...this.#headers(sessionId),
              accept: 'text/event-stream',
              ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }),
            },
            dispatcher: this.#dispatcher,
            signal: control.signal,
          })
          if (res.statusCode === 405 || res.statusCode === 404 || res.statusCode === 409) {
            // 405: the server offers no stream; 404: the session is gone (the next POST finds out); 409: one is open.
            await res.body.dump()
            this.#log.debug('no GET stream for server messages', { status: res.statusCode })
            break
          }
          if (res.statusCode !== 200) {
            await res.body.dump()
            throw new Error(`GET answered HTTP ${res.statusCode}`)
          }
          delay = RETRY_MIN_MS
          lastEventId =
            (await this.#readSse(
              res.body,
              (m) => this.#write(m),
              (ms) => {
                delay = Math.min(Math.max(ms, 0), RETRY_MAX_MS)
              },
            )) ?? lastEventId
        } catch (err) {
          if (control.signal.aborted) break
          this.#log.warn('the GET stream for server messages broke: reopening', {
            reason: (err as Error).message,
            inMs: delay,
          })
          delay = Math.min(delay * 2, RETRY_MAX_MS)
        }
        if (control.signal.aborted) break
        await new Promise((resolve) => setTimeout(resolve, delay).unref())
      }
      if (this.#stream === control) this.#stream = undefined
    })()
  }
}

function header(v: unknown): string | undefined {
  if (Array.isArray(v)) return header(v[0])
  return typeof v === 'string' && v !== '' ? v : undefined
}

/** Reads a body up to `max` bytes; undefined when it is longer (the rest is discarded). */
async function readText(body: AsyncIterable<Uint8Array>, max: number): Promise<string | undefined> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > max) {
      ;(body as { destroy?: () => void }).destroy?.()
      return undefined
    }
    parts.push(Buffer.from(chunk))
  }
  return Buffer.concat(parts).toString('utf8')
}

function parseRpcError(text: string | undefined): JsonRpcMessage | undefined {
  if (text === undefined) return undefined
  try {
    const m = asMessage(JSON.parse(text))
    return typeof m !== 'string' && m.error !== undefined ? m : undefined
  } catch {
    return undefined
  }
}

/** The id of a request whose line was too long to read, when it comes first (`{"jsonrpc":"2.0","id":…`). */
function leadingId(head: string): JsonRpcId | undefined {
  const m = /^\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")/.exec(head)
  if (m?.[1] === undefined) return undefined
  try {
    const v = JSON.parse(m[1]) as unknown
    return isId(v) ? v : undefined
  } catch {
    return undefined
  }
}
