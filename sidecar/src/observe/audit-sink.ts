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
 * Lines to a stream (stdout by default), honouring its back-pressure: while
 * it is over its high-water mark, lines wait in a bounded queue; what does
 * not fit is dropped and reported. A stream error (EPIPE when the reader
 * went away) is reported, never rethrown.
 */
export class StreamSink implements AuditSink {
  readonly #stream: Writable
  readonly #onLost: LostLines
  readonly #maxQueue: number
  #queue: string[] = []
  #queuedBytes = 0
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
    while (this.#queue.length > 0 && !this.#blocked) {
      const line = this.#queue.shift() as string
      this.#queuedBytes -= Buffer.byteLength(line)
      this.#push(line)
    }
    this.#settle()
  }

  constructor(stream: Writable, onLost: LostLines, maxQueueBytes = DEFAULT_QUEUE_BYTES) {
    this.#stream = stream
    this.#onLost = onLost
    this.#maxQueue = maxQueueBytes
    stream.on('error', this.#onError)
  }

  write(line: string): void {
    if (this.#failed || this.#stream.destroyed) {
      this.#onLost(1, new Error('the audit stream is closed'))
      return
    }
    if (!this.#blocked) {
      this.#push(line)
      return
    }
    const bytes = Buffer.byteLength(line)
    if (this.#queuedBytes + bytes > this.#maxQueue) {
      this.#onLost(1, new Error(`audit queue full (${this.#maxQueue} bytes waiting for the reader)`))
      return
    }
    this.#queue.push(line)
    this.#queuedBytes += bytes
  }

  flush(): Promise<void> {
    if (!this.#blocked || this.#failed) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  async close(): Promise<void> {
    await this.flush()
    this.#stream.off('drain', this.#onDrain)
    this.#stream.off('error', this.#onError)
  }

  #push(line: string): void {
    if (this.#stream.write(line)) return
    this.#blocked = true
    this.#stream.once('drain', this.#onDrain)
  }

  #settle(): void {
    if (this.#blocked && !this.#failed) return
    for (const resolve of this.#idle.splice(0)) resolve()
  }
}
