/**
 * Newline framing for MCP's stdio transport, with a cap: a line longer than
 * `maxBytes` is never held whole. Its first and last bytes are kept (enough
 * to name what was dropped), the rest is discarded, and reading resumes at
 * the next newline, so one runaway message cannot exhaust memory or desync
 * the stream.
 */

export const DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024

/** What is kept of an oversized line: its start and its end, for logs and id recovery. */
export interface OversizedLine {
  bytes: number
  head: string
  tail: string
}

export interface LineHandlers {
  line(text: string): void
  oversized(info: OversizedLine): void
}

const KEEP = 256
const NEWLINE = 0x0a

export class LineSplitter {
  readonly #max: number
  readonly #on: LineHandlers
  #parts: Buffer[] = []
  #size = 0
  // Set while skipping the rest of an oversized line.
  #dropping: { bytes: number; head: Buffer; tail: Buffer } | undefined

  constructor(maxBytes: number, handlers: LineHandlers) {
    this.#max = maxBytes
    this.#on = handlers
  }

  push(chunk: Buffer): void {
    let start = 0
    while (start < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, start)
      const end = nl === -1 ? chunk.length : nl
      this.#take(chunk.subarray(start, end))
      if (nl === -1) return
      this.#endLine()
      start = nl + 1
    }
  }

  /** The stream ended: a last line without its newline still counts. */
  end(): void {
    if (this.#size > 0 || this.#dropping !== undefined) this.#endLine()
  }

  #take(piece: Buffer): void {
    if (piece.length === 0) return
    if (this.#dropping !== undefined) {
      this.#dropping.bytes += piece.length
      this.#dropping.tail = lastBytes(Buffer.concat([this.#dropping.tail, piece]))
      return
    }
    if (this.#size + piece.length <= this.#max) {
      this.#parts.push(piece)
      this.#size += piece.length
      return
    }
    const held = Buffer.concat([...this.#parts, piece])
    this.#dropping = { bytes: held.length, head: held.subarray(0, KEEP), tail: lastBytes(held) }
    this.#parts = []
    this.#size = 0
  }

  #endLine(): void {
    const dropped = this.#dropping
    if (dropped !== undefined) {
      this.#dropping = undefined
      this.#on.oversized({
        bytes: dropped.bytes,
        head: dropped.head.toString('utf8'),
        tail: dropped.tail.toString('utf8'),
      })
      return
    }
    let text = Buffer.concat(this.#parts, this.#size).toString('utf8')
    this.#parts = []
    this.#size = 0
    if (text.endsWith('\r')) text = text.slice(0, -1)
    // Blank lines carry no message; stdio peers sometimes emit them.
    if (text.trim() === '') return
    this.#on.line(text)
  }
}

function lastBytes(b: Buffer): Buffer {
  return Buffer.from(b.subarray(Math.max(0, b.length - KEEP)))
}
