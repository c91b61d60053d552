/**
 * One MCP session of `serve-stdio`: one stdio server child, the requests in
 * flight to it, and the session's GET stream.
 *
 * Request ids are renumbered on the way to the child and restored on the way
 * back. The child therefore never sees two requests with the same id, even
 * when a client reuses the id of a request the bridge already answered with a
 * timeout, and a late answer to such a request is recognised and dropped.
 *
 * Over stdio a server cannot say which request a notification belongs to,
 * except for progress, which names the request's progress token. Progress
 * goes to the reply of its request; everything else (log messages, list
 * changes, server requests such as sampling) goes to the GET stream, or,
 * while none is open, to an open SSE reply, or waits (bounded) for a stream.
 */
import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { Writable } from 'node:stream'
import type { Logger } from '../observe/log.ts'
import { StdioChild } from './child.ts'
import {
  bridgeError,
  idKey,
  isId,
  type JsonRpcId,
  type JsonRpcMessage,
  kindOf,
  progressTokenOf,
  trailingId,
} from './jsonrpc.ts'
import { EventStream, type PostReply } from './replies.ts'

export interface SessionOptions {
  command: string
  args: readonly string[]
  maxLineBytes: number
  /** A request the child has not answered after this long gets SVD_BRIDGE_CHILD_TIMEOUT; progress restarts the clock. */
  requestTimeoutMs: number
  logger: Logger
  childStderr?: Writable
}

interface Pending {
  clientId: JsonRpcId
  childId: number
  method: string
  reply: PostReply
  timer: NodeJS.Timeout
  progressToken?: JsonRpcId
}

/** Messages kept for a GET stream that is not open yet; beyond this, the oldest are dropped. */
const BACKLOG_MAX = 1000

export class BridgeSession {
  readonly id = randomBytes(16).toString('base64url')
  readonly #options: SessionOptions
  readonly #child: StdioChild
  readonly #log: Logger
  readonly #onEnd: (session: BridgeSession) => void
  #nextChildId = 1
  readonly #pending = new Map<number, Pending>()
  readonly #byClientId = new Map<string, Pending>()
  readonly #byProgress = new Map<string, Pending>()
  readonly #replies = new Set<PostReply>()
  #stream: EventStream | undefined
  #backlog: JsonRpcMessage[] = []
  #ended = false
  #lastActive = Date.now()

  constructor(options: SessionOptions, onEnd: (session: BridgeSession) => void) {
    this.#options = options
    this.#log = options.logger
    this.#onEnd = onEnd
    this.#child = new StdioChild(
      {
        command: options.command,
        args: options.args,
        maxLineBytes: options.maxLineBytes,
        logger: options.logger,
        ...(options.childStderr === undefined ? {} : { stderr: options.childStderr }),
      },
      {
        message: (m) => this.#fromChild(m),
        oversized: (info) => {
          const id = trailingId(info.tail)
          const p = typeof id === 'number' ? this.#pending.get(id) : undefined
          if (p === undefined) return
          this.#settle(
            p,
            bridgeError(
              p.clientId,
              'SVD_BRIDGE_MESSAGE_TOO_LARGE',
              `the stdio server's answer to ${p.method} is ${info.bytes} bytes, over the ${options.maxLineBytes}-byte line cap; it was dropped`,
            ),
          )
        },
        exit: (info) => this.#childExited(info.reason),
      },
    )
    this.#log.info('stdio server started', { session: this.#logId, pid: this.#child.pid })
  }

  get ended(): boolean {
    return this.#ended
  }

  /** Whether nothing depends on the session right now (no request in flight, no GET stream). */
  idleSince(now: number): number {
    if (this.#pending.size > 0 || this.#stream?.open) return 0
    return now - this.#lastActive
  }

  /** The client's messages of one POST, in order; `reply` answers its requests. */
  fromClient(messages: JsonRpcMessage[], reply: PostReply | undefined): void {
    this.#lastActive = Date.now()
    if (reply !== undefined) this.#replies.add(reply)
    for (const m of messages) {
      const kind = kindOf(m)
      if (kind === 'request' && reply !== undefined) this.#request(m, reply)
      else if (kind === 'notification') this.#notification(m)
      else this.#child.send(m)
    }
  }

  /** Opens the GET stream; false when one is open already (one per session). */
  openStream(res: ServerResponse, headers: Record<string, string>): boolean {
    if (this.#stream?.open) return false
    this.#lastActive = Date.now()
    const stream = new EventStream(res, headers, () => {
      if (this.#stream === stream) this.#stream = undefined
      this.#lastActive = Date.now()
    })
    this.#stream = stream
    const backlog = this.#backlog
    this.#backlog = []
    for (const m of backlog) stream.send(m)
    return true
  }

  /** Ends the session: pending requests are answered, the child is stopped, the GET stream closed. */
  async end(why: string): Promise<void> {
    if (this.#ended) {
      await this.#child.exited
      return
    }
    this.#ended = true
    this.#log.info('session ended: stopping the stdio server', { session: this.#logId, why })
    this.#failAll('SVD_BRIDGE_CHILD_EXITED', `the session ended (${why}) before the stdio server answered`)
    this.#stream?.end()
    this.#onEnd(this)
    await this.#child.stop()
  }

  get #logId(): string {
    // Enough to tell sessions apart in the log without writing out the bearer-like id.
    return this.id.slice(0, 6)
  }

  #request(m: JsonRpcMessage, reply: PostReply): void {
    const clientId = m.id as JsonRpcId
    const method = m.method as string
    if (this.#ended || !this.#child.alive) {
      reply.respond(bridgeError(clientId, 'SVD_BRIDGE_CHILD_EXITED', 'the stdio server has exited'))
      return
    }
    const childId = this.#nextChildId++
    const progressToken = progressTokenOf(m)
    const p: Pending = {
      clientId,
      childId,
      method,
      reply,
      timer: this.#timer(childId),
      ...(progressToken === undefined ? {} : { progressToken }),
    }
    this.#pending.set(childId, p)
    this.#byClientId.set(idKey(clientId), p)
    if (progressToken !== undefined) this.#byProgress.set(idKey(progressToken), p)
    this.#child.send({ ...m, id: childId })
  }

  #notification(m: JsonRpcMessage): void {
    // A cancellation names the request by the client's id; the child knows it by its own.
    if (m.method === 'notifications/cancelled' && m.params !== undefined && !Array.isArray(m.params)) {
      const target = m.params.requestId
      const p =
        typeof target === 'string' || typeof target === 'number'
          ? this.#byClientId.get(idKey(target))
          : undefined
      if (p === undefined) return
      this.#child.send({ ...m, params: { ...m.params, requestId: p.childId } })
      return
    }
    this.#child.send(m)
  }

  #timer(childId: number): NodeJS.Timeout {
    const ms = this.#options.requestTimeoutMs
    const timer = setTimeout(() => {
      const p = this.#pending.get(childId)
      if (p === undefined) return
      this.#log.warn('stdio server did not answer in time: request answered with an error', {
        session: this.#logId,
        code: 'SVD_BRIDGE_CHILD_TIMEOUT',
        method: p.method,
        timeoutMs: ms,
      })
      this.#settle(
        p,
        bridgeError(
          p.clientId,
          'SVD_BRIDGE_CHILD_TIMEOUT',
          `the stdio server did not answer ${p.method} within ${ms} ms`,
          { timeoutMs: ms },
        ),
      )
      // Tell the child to stop working on it, the MCP way; its late answer, if any, is dropped.
      this.#child.send({
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: childId, reason: `no answer within ${ms} ms (svidecar bridge timeout)` },
      })
    }, ms)
    timer.unref()
    return timer
  }

  #fromChild(m: JsonRpcMessage): void {
    const kind = kindOf(m)
    if (kind === 'response') {
      const p = typeof m.id === 'number' ? this.#pending.get(m.id) : undefined
      if (p === undefined) {
        this.#log.debug('stdio server answered a request no one waits for: dropped', { session: this.#logId })
        return
      }
      this.#settle(p, { ...m, id: p.clientId })
      return
    }
    if (kind === 'notification' && m.method === 'notifications/progress') {
      const token = m.params !== undefined && !Array.isArray(m.params) ? m.params.progressToken : undefined
      const p = isId(token) ? this.#byProgress.get(idKey(token)) : undefined
      if (p !== undefined) {
        clearTimeout(p.timer)
        p.timer = this.#timer(p.childId)
        if (p.reply.related(m)) return
      }
    }
    this.#unrelated(m)
  }

  #unrelated(m: JsonRpcMessage): void {
    if (this.#stream?.open) {
      this.#stream.send(m)
      return
    }
    for (const reply of this.#replies) {
      if (!reply.open) this.#replies.delete(reply)
      else if (reply.canStream && reply.related(m)) return
    }
    this.#backlog.push(m)
    if (this.#backlog.length > BACKLOG_MAX) {
      this.#backlog.shift()
      this.#log.warn('no GET stream open for server messages: the oldest waiting one was dropped', {
        session: this.#logId,
        kept: BACKLOG_MAX,
      })
    }
  }

  #settle(p: Pending, answer: JsonRpcMessage): void {
    clearTimeout(p.timer)
    this.#pending.delete(p.childId)
    if (this.#byClientId.get(idKey(p.clientId)) === p) this.#byClientId.delete(idKey(p.clientId))
    if (p.progressToken !== undefined && this.#byProgress.get(idKey(p.progressToken)) === p)
      this.#byProgress.delete(idKey(p.progressToken))
    this.#lastActive = Date.now()
    // The client hung up on its POST; a disconnect is not a cancellation, so the answer takes the GET stream.
    if (!p.reply.respond(answer)) this.#unrelated(answer)
    if (!p.reply.open) this.#replies.delete(p.reply)
  }

  #failAll(code: 'SVD_BRIDGE_CHILD_EXITED', message: string): void {
    for (const p of [...this.#pending.values()]) this.#settle(p, bridgeError(p.clientId, code, message))
  }

  #childExited(reason: string): void {
    if (this.#ended) return
    this.#ended = true
    this.#log.error('stdio server exited: its session ends; the client must initialize a new one', {
      session: this.#logId,
      code: 'SVD_BRIDGE_CHILD_EXITED',
      reason,
      pending: this.#pending.size,
    })
    this.#failAll('SVD_BRIDGE_CHILD_EXITED', `the stdio server ${reason} before it answered`)
    this.#stream?.end()
    this.#onEnd(this)
  }
}
