/**
 * Splits an SSE byte stream into whole events (each with its terminating
 * blank line) as the bytes arrive. A whole event is handed on at once; only
 * the bytes of an event whose blank line has not arrived yet are held, and
 * never more than the cap: the client could not act on half an event anyway,
 * so holding it delays nothing, and it lets the meter drop an event (the
 * usage chunk a client did not ask for) or end the stream cleanly between
 * events.
 */

export class SseFrames {
  readonly #cap: number
  #held: Buffer[] = []
  #heldBytes = 0
  // Bytes since the last line terminator; 0 at the start of a line.
  #lineLen = 0
  #lastCR = false

  constructor(cap: number) {
    this.#cap = cap
  }

  /** Whole events completed by `chunk`, in order; `overflow` when the event under way passed the cap. */
  push(chunk: Buffer): { events: Buffer[]; overflow: boolean } {
    const events: Buffer[] = []
    let from = 0
    // Where the next \n and \r are (found natively, not byte by byte), searched again only once passed.
    let nextLf = -1
    let nextCr = -1
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]
      if (c === 0x0a && this.#lastCR) {
        // The \n of a \r\n: the terminator was counted at the \r.
        this.#lastCR = false
        continue
      }
      this.#lastCR = c === 0x0d
      if (c !== 0x0a && c !== 0x0d) {
        // The rest of the line up to its terminator (or the chunk's end) at once.
        if (nextLf !== chunk.length && nextLf < i) nextLf = at(chunk.indexOf(0x0a, i), chunk.length)
        if (nextCr !== chunk.length && nextCr < i) nextCr = at(chunk.indexOf(0x0d, i), chunk.length)
        const end = Math.min(nextLf, nextCr)
        this.#lineLen += end - i
        i = end - 1
        continue
      }
      if (this.#lineLen > 0) {
        this.#lineLen = 0
        continue
      }
      // A blank line: the event ends here (with the \n of a \r\n when it is in this chunk).
      let end = i + 1
      if (c === 0x0d && chunk[end] === 0x0a) {
        end++
        i++
        this.#lastCR = false
      }
      // An event that is the whole chunk (how most servers write them) is passed on as it came.
      events.push(this.#take(from === 0 && end === chunk.length ? chunk : chunk.subarray(from, end)))
      from = end
    }
    if (from < chunk.length) {
      const rest = chunk.subarray(from)
      this.#heldBytes += rest.length
      if (this.#heldBytes > this.#cap) return { events, overflow: true }
      // A copy: the chunk's memory belongs to the connection's reader.
      this.#held.push(Buffer.from(rest))
    }
    return { events, overflow: false }
  }

  /** Bytes of an event still incomplete. */
  get pending(): number {
    return this.#heldBytes
  }

  #take(tail: Buffer): Buffer {
    if (this.#held.length === 0) return tail
    const whole = Buffer.concat([...this.#held, tail])
    this.#held = []
    this.#heldBytes = 0
    return whole
  }
}

/** An indexOf result, with `none` for not found. */
function at(index: number, none: number): number {
  return index === -1 ? none : index
}
