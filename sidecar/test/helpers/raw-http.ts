/**
 * HTTP/1.1 at the byte level, for cases no well-behaved library produces:
 * a raw upstream app that answers with exact bytes (a broken app), and a
 * raw client that writes exact bytes and reads responses one by one,
 * interim (1xx) responses included.
 */
import { once } from 'node:events'
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Test } from 'tap'

/** What the raw app sends for a case: bytes in one write, pieces written one by one, or 'close' to hang up (a last piece too). */
export type RawAnswer = string | readonly string[] | 'close'

/**
 * Answers each request with the bytes of the case its path ends with (`/…/case/<name>`), as latin1, or
 * `ok` for any other path. Records every byte it received, so a test can prove what never reached it.
 */
export class RawApp {
  readonly server: Server
  readonly received: string[] = []
  readonly #answers: Readonly<Record<string, RawAnswer>>

  private constructor(answers: Readonly<Record<string, RawAnswer>>) {
    this.#answers = answers
    this.server = createServer((socket) => this.#serve(socket))
  }

  static async start(t: Test, answers: Readonly<Record<string, RawAnswer>>): Promise<RawApp> {
    const app = new RawApp(answers)
    app.server.listen(0, '127.0.0.1')
    await once(app.server, 'listening')
    t.teardown(() => new Promise((r) => app.server.close(r)))
    return app
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port
  }

  /** Request lines received so far, e.g. `GET /case/x HTTP/1.1`. */
  get requestLines(): string[] {
    return this.received.join('').match(/^[A-Z]+ \S+ HTTP\/1\.[01]$/gm) ?? []
  }

  #serve(socket: Socket): void {
    socket.on('error', () => {})
    let buffer = ''
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => {
      this.received.push(d)
      buffer += d
      for (;;) {
        const end = buffer.indexOf('\r\n\r\n')
        if (end === -1) return
        const head = buffer.slice(0, end)
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? '0')
        if (buffer.length < end + 4 + length) return
        buffer = buffer.slice(end + 4 + length)
        const path = head.split(' ')[1] ?? '/'
        const name = /\/case\/([^/?]+)/.exec(path)?.[1]
        this.#answer(socket, name === undefined ? OK : (this.#answers[name] ?? OK))
      }
    })
  }

  #answer(socket: Socket, answer: RawAnswer): void {
    if (answer === 'close') {
      socket.destroy()
      return
    }
    const pieces = typeof answer === 'string' ? [answer] : [...answer]
    // Pieces go out as separate segments: each waits until the previous one was flushed, plus a short pause.
    const next = () => {
      const piece = pieces.shift()
      if (piece === undefined || socket.destroyed) return
      // 'close' after other pieces: hang up mid-answer.
      if (piece === 'close') {
        socket.destroy()
        return
      }
      socket.write(Buffer.from(piece, 'latin1'), () => setTimeout(next, 15))
    }
    next()
  }
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok'

export interface RawResponse {
  status: number
  reason: string
  /** Lower-case names; repeated fields joined with ", ". */
  headers: Record<string, string>
  body: string
  /** The whole response as received (latin1). */
  raw: string
}

/** A client over any byte stream (TCP or an mTLS socket) that reads responses one at a time. */
export class RawClient {
  readonly socket: Duplex
  #buffer = ''
  #closed = false
  #wake: (() => void) | undefined

  constructor(socket: Duplex) {
    this.socket = socket
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => {
      this.#buffer += d
      this.#wake?.()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.#closed = true
      this.#wake?.()
    })
  }

  static async connect(t: Test, port: number): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1')
    await once(socket, 'connect')
    t.teardown(() => {
      socket.destroy()
    })
    return new RawClient(socket)
  }

  send(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes)
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Bytes received and not yet read as a response. */
  get pending(): string {
    return this.#buffer
  }

  /** The next response, interim (1xx) ones included; rejects if the connection closes or the deadline passes first. */
  async next(timeoutMs = 10_000): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const parsed = this.#take()
      if (parsed !== undefined) return parsed
      if (this.#closed)
        throw new Error(`connection closed; unparsed: ${JSON.stringify(this.#buffer.slice(0, 300))}`)
      await this.#waitForData(deadline)
    }
  }

  /** Resolves when the connection has closed; rejects at the deadline. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!this.#closed) await this.#waitForData(deadline)
  }

  #waitForData(deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.#wake = undefined
          reject(
            new Error(
              `nothing more within the deadline; unparsed: ${JSON.stringify(this.#buffer.slice(0, 300))}`,
            ),
          )
        },
        Math.max(0, deadline - Date.now()),
      )
      this.#wake = () => {
        clearTimeout(timer)
        this.#wake = undefined
        resolve()
      }
    })
  }

  #take(): RawResponse | undefined {
    const buf = this.#buffer
    const end = buf.indexOf('\r\n\r\n')
    if (end === -1) return undefined
    const [statusLine = '', ...lines] = buf.slice(0, end).split('\r\n')
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine)
    if (m === null) throw new Error(`not a status line: ${JSON.stringify(statusLine)}`)
    const status = Number(m[1])
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      const name = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim()
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
    }
    let rest = buf.slice(end + 4)
    let body = ''
    if (status >= 200 && status !== 204 && status !== 304) {
      if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length'])
        if (rest.length < n) return undefined
        body = rest.slice(0, n)
        rest = rest.slice(n)
      } else if (headers['transfer-encoding']?.includes('chunked')) {
        let at = 0
        let out = ''
        for (;;) {
          const eol = rest.indexOf('\r\n', at)
          if (eol === -1) return undefined
          const size = Number.parseInt(rest.slice(at, eol), 16)
          if (size === 0) {
            const tail = rest.indexOf('\r\n\r\n', eol)
            if (tail === -1) return undefined
            at = tail + 4
            break
          }
          if (rest.length < eol + 2 + size + 2) return undefined
          out += rest.slice(eol + 2, eol + 2 + size)
          at = eol + 2 + size + 2
        }
        body = out
        rest = rest.slice(at)
      } else {
        // Delimited by the connection closing.
        if (!this.#closed) return undefined
        body = rest
        rest = ''
      }
    }
    this.#buffer = rest
    return { status, reason: m[2] ?? '', headers, body, raw: buf.slice(0, buf.length - rest.length) }
  }
}
