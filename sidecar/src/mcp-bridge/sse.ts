/**
 * A server-sent events reader (WHATWG HTML "event stream interpretation") for
 * MCP replies, with a cap on one event's size: an event over the cap is
 * dropped whole and reported, never buffered without bound.
 */

export interface SseEvent {
  event: string
  data: string
  id: string | undefined
}

export interface SseHandlers {
  event(e: SseEvent): void
  oversized(bytes: number): void
  /** The server asked for this reconnection delay. */
  retry?(ms: number): void
}

export class SseReader {
  readonly #max: number
  readonly #on: SseHandlers
  readonly #decoder = new TextDecoder('utf-8')
  #buffer = ''
  #data: string[] = []
  #dataSize = 0
  #event = ''
  #lastId: string | undefined
  #dropping = false
  #firstChunk = true

  constructor(maxEventBytes: number, handlers: SseHandlers) {
    this.#max = maxEventBytes
    this.#on = handlers
  }

  /** The id of the last event seen (for `Last-Event-ID` on reconnect). */
  get lastEventId(): string | undefined {
    return this.#lastId
  }

  push(chunk: Uint8Array): void {
    let text = this.#decoder.decode(chunk, { stream: true })
    if (this.#firstChunk && text.length > 0) {
      this.#firstChunk = false
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
    }
    this.#buffer += text
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.#buffer)
      if (m === null) break
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (m[0] === '\r' && m.index === this.#buffer.length - 1) break
      const line = this.#buffer.slice(0, m.index)
      this.#buffer = this.#buffer.slice(m.index + m[0].length)
      this.#line(line)
    }
    // A line that never ends is as unbounded as an event that never ends.
    if (this.#buffer.length > this.#max) {
      this.#dropping = true
      this.#dataSize += this.#buffer.length
      this.#buffer = ''
    }
  }

  #line(line: string): void {
    if (line === '') {
      this.#dispatch()
      return
    }
    if (line.startsWith(':')) return
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') {
      this.#dataSize += value.length + 1
      if (this.#dataSize > this.#max) this.#dropping = true
      if (!this.#dropping) this.#data.push(value)
    } else if (field === 'event') this.#event = value
    else if (field === 'id') {
      if (!value.includes('\0')) this.#lastId = value
    } else if (field === 'retry' && /^\d+$/.test(value)) this.#on.retry?.(Number(value))
  }

  #dispatch(): void {
    const dropped = this.#dropping
    const size = this.#dataSize
    const data = this.#data
    const event = this.#event
    this.#data = []
    this.#dataSize = 0
    this.#event = ''
    this.#dropping = false
    if (dropped) {
      this.#on.oversized(size)
      return
    }
    if (data.length === 0) return
    this.#on.event({ event: event === '' ? 'message' : event, data: data.join('\n'), id: this.#lastId })
  }
}
