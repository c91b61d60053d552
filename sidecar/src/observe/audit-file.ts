/**
 * An append-only file rotated by size: `audit.log` is written until the next
 * line would take it past `maxBytes`, then `audit.log.1` … `audit.log.N`
 * shift up by one and a new `audit.log` starts. Lines are never split across
 * files (a line longer than `maxBytes` gets a file of its own).
 *
 * `write` only queues: one writer drains the queue in batches with
 * fs/promises, so the request path never waits on the disk. The queue is
 * bounded; what does not fit, or what the disk refuses, is dropped and
 * reported through `onLost`, never thrown.
 */
import { type FileHandle, open, rename, unlink } from 'node:fs/promises'
import type { AuditSink, LostLines } from './audit-sink.ts'

export interface RotatingFileOptions {
  path: string
  maxBytes: number
  /** Old files kept (`path.1` … `path.N`); 0 keeps none. */
  maxFiles: number
  /** Bytes waiting for the disk before new lines are dropped. */
  maxQueueBytes?: number
  onLost: LostLines
}

const BATCH_BYTES = 256 * 1024
const DEFAULT_QUEUE_BYTES = 16 * 1024 * 1024

interface Pending {
  text: string
  bytes: number
}

export class RotatingFile implements AuditSink {
  readonly #options: RotatingFileOptions
  readonly #maxQueue: number
  #queue: Pending[] = []
  #queuedBytes = 0
  #handle: FileHandle | undefined
  #size = 0
  #running: Promise<void> | undefined
  #closed = false

  constructor(options: RotatingFileOptions) {
    this.#options = options
    this.#maxQueue = options.maxQueueBytes ?? DEFAULT_QUEUE_BYTES
  }

  write(line: string): void {
    if (this.#closed) {
      this.#options.onLost(1, new Error('the audit file is closed'))
      return
    }
    const bytes = Buffer.byteLength(line)
    if (this.#queuedBytes + bytes > this.#maxQueue) {
      this.#options.onLost(1, new Error(`audit queue full (${this.#maxQueue} bytes waiting for the disk)`))
      return
    }
    this.#queue.push({ text: line, bytes })
    this.#queuedBytes += bytes
    this.#kick()
  }

  async flush(): Promise<void> {
    while (this.#running) await this.#running
  }

  async close(): Promise<void> {
    await this.flush()
    this.#closed = true
    const handle = this.#handle
    this.#handle = undefined
    await handle?.close().catch(() => {})
  }

  #kick(): void {
    if (this.#running) return
    // #drain reports its own failures; a throwing onLost must still not become an unhandled rejection.
    this.#running = this.#drain()
      .catch(() => {})
      .finally(() => {
        this.#running = undefined
        if (this.#queue.length > 0) this.#kick()
      })
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      let batch: Pending[] = []
      try {
        await this.#ensureOpen()
        const first = this.#queue[0] as Pending
        if (this.#size > 0 && this.#size + first.bytes > this.#options.maxBytes) await this.#rotate()
        batch = this.#take()
        await (this.#handle as FileHandle).writeFile(batch.map((p) => p.text).join(''))
        this.#size += batch.reduce((n, p) => n + p.bytes, 0)
      } catch (err) {
        // Without a file nothing queued can be written: drop it all, try again with the next line.
        this.#options.onLost(batch.length > 0 ? batch.length : this.#dropAll(), err)
        const handle = this.#handle
        this.#handle = undefined
        await handle?.close().catch(() => {})
      }
    }
  }

  /** Lines for one write: as many as fit in the current file (at least one) and in one batch. */
  #take(): Pending[] {
    const out: Pending[] = []
    let bytes = 0
    while (this.#queue.length > 0) {
      const next = this.#queue[0] as Pending
      if (
        out.length > 0 &&
        (this.#size + bytes + next.bytes > this.#options.maxBytes || bytes + next.bytes > BATCH_BYTES)
      )
        break
      out.push(next)
      this.#queue.shift()
      bytes += next.bytes
    }
    this.#queuedBytes -= bytes
    return out
  }

  #dropAll(): number {
    const n = this.#queue.length
    this.#queue = []
    this.#queuedBytes = 0
    return n
  }

  async #ensureOpen(): Promise<void> {
    if (this.#handle !== undefined) return
    const handle = await open(this.#options.path, 'a', 0o640)
    try {
      this.#size = (await handle.stat()).size
    } catch (err) {
      await handle.close().catch(() => {})
      throw err
    }
    this.#handle = handle
  }

  async #rotate(): Promise<void> {
    const { path, maxFiles } = this.#options
    const handle = this.#handle
    this.#handle = undefined
    await handle?.close()
    for (let i = maxFiles - 1; i >= 1; i--) await renameIfThere(`${path}.${i}`, `${path}.${i + 1}`)
    if (maxFiles >= 1) await rename(path, `${path}.1`)
    else await unlink(path)
    await this.#ensureOpen()
  }
}

async function renameIfThere(from: string, to: string): Promise<void> {
  try {
    await rename(from, to)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}
