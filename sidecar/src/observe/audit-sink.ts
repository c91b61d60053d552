/**
 * Where audit lines go. A sink takes whole lines and never throws or waits
 * on the caller's behalf: lines it cannot deliver are reported as lost.
 */
import type { Writable } from 'node:stream'

export interface AuditSink {
  /** Queues one line (newline included); returns at once. */
  write(line: string): void
  /** Resolves when every line queued so far has been handed to the OS (or reported lost). */
  flush(): Promise<void>
  /** Flushes, then releases the file or stream. */
  close(): Promise<void>
}

/** Called with the number of lines that will never be written, and why. */
export type LostLines = (lines: number, cause: unknown) => void

const DEFAULT_QUEUE_BYTES = 16 * 1024 * 1024

/**
 * Lines to a stream (stdout by default). `write` only queues: the lines of
 * one turn of the event loop go out together in one write on the next check
 * phase (setImmediate), after the request that produced them has been
 * forwarded. On a pipe, Node's stdout writes synchronously, and waking the
 * reader made each line's write cost 80 µs at the median and over 0.5 ms at
 * p99 on the request path (bench/RESULTS.md, issue 10); batched, they cost
 * the request nothing and a busy sidecar fewer writes. Order is kept (one
 * queue), and `flush`/`close` write what is queued at once, as does the
 * process's `exit` (a `process.exit` elsewhere loses nothing queued).
 * Back-pressure is honoured: while the stream is over its high-water mark,
 * lines wait in the bounded queue; what does not fit is dropped and reported.
 * A stream error (EPIPE when the reader went away) is reported, never
 * rethrown.
 */
export class StreamSink implements AuditSink {
  readonly #stream: Writable
  readonly #onLost: LostLines
  readonly #maxQueue: number
  #queue: string[] = []
  #queuedBytes = 0
  #scheduled = false
  #blocked = false
  #failed = false
  #idle: Array<() => void> = []
  readonly #onError = (err: unknown) => {
    this.#failed = true
    this.#onLost(this.#queue.length, err)
    this.#queue = []
    this.#queuedBytes = 0
    this.#settle()
  }
  readonly #onDrain = () => {
    this.#blocked = false
    this.writeQueued()
    this.#settle()
  }
  readonly #onTurn = () => {
    this.#scheduled = false
    this.writeQueued()
  }

  constructor(stream: Writable, onLost: LostLines, maxQueueBytes = DEFAULT_QUEUE_BYTES) {
    this.#stream = stream
    this.#onLost = onLost
    this.#maxQueue = maxQueueBytes
    stream.on('error', this.#onError)
    watchExit(this)
  }

  write(line: string): void {
    if (this.#failed || this.#stream.destroyed) {
      this.#onLost(1, new Error('the audit stream is closed'))
      return
    }
    const bytes = Buffer.byteLength(line)
    if (this.#queuedBytes + bytes > this.#maxQueue) {
      this.#onLost(1, new Error(`audit queue full (${this.#maxQueue} bytes waiting for the reader)`))
      return
    }
    this.#queue.push(line)
    this.#queuedBytes += bytes
    if (this.#blocked || this.#scheduled) return
    this.#scheduled = true
    setImmediate(this.#onTurn)
  }

  flush(): Promise<void> {
    this.writeQueued()
    if (!this.#blocked || this.#failed) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  async close(): Promise<void> {
    await this.flush()
    sinks.delete(this)
    this.#stream.off('drain', this.#onDrain)
    this.#stream.off('error', this.#onError)
  }

  /** Everything queued, in order, as one write; unless the stream is over its mark (then on 'drain'). */
  writeQueued(): void {
    if (this.#blocked || this.#failed || this.#queue.length === 0) return
    const lines = this.#queue
    this.#queue = []
    this.#queuedBytes = 0
    if (this.#stream.destroyed) {
      this.#onLost(lines.length, new Error('the audit stream is closed'))
      return
    }
    const text = lines.length === 1 ? (lines[0] as string) : lines.join('')
    if (this.#stream.write(text)) return
    this.#blocked = true
    this.#stream.once('drain', this.#onDrain)
  }

  #settle(): void {
    if (this.#blocked && !this.#failed) return
    for (const resolve of this.#idle.splice(0)) resolve()
  }
}

// Sinks not closed yet: what they queue in the process's last turn is written on its way out.
const sinks = new Set<StreamSink>()
let exitHook = false

function watchExit(sink: StreamSink): void {
  sinks.add(sink)
  if (exitHook) return
  exitHook = true
  process.on('exit', () => {
    for (const s of sinks) s.writeQueued()
  })
}
