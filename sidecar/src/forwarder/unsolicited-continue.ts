/**
 * Skips a `100 Continue` the upstream sends without being asked.
 *
 * RFC 9110 §15.2: a client must be able to parse 1xx responses it did not
 * expect, and may ignore them. The sidecar never sends `Expect` upstream
 * (forwarder/expect.ts), so any 100 is unsolicited, yet some servers send
 * one anyway. undici treats a 100 as a broken connection ('bad response'),
 * which would turn a working upstream into a 502; other 1xx codes it passes
 * over itself. So the sidecar removes 100 heads from the upstream's bytes
 * before undici's parser sees them.
 *
 * That is only safe where a response head must start: right after a request
 * head went out. The pools never pipeline (one request per connection at a
 * time), so the bytes that follow a request head start that request's
 * response. The filter arms when undici writes a request line (undici writes
 * each request head as one latin1 string; bodies are buffers) and disarms at
 * the first head that is not a 100; everything else passes through
 * untouched. Should undici ever write heads differently, the filter simply
 * never arms and a 100 is reported as SVD_UPSTREAM_PROTOCOL, as before.
 */
import type { Socket } from 'node:net'
import type { buildConnector } from 'undici'

// A request line as undici writes it: method SP origin-form target SP HTTP/1.1 CRLF.
const REQUEST_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ \/\S* HTTP\/1\.1\r\n/
// `HTTP/1.x 100` followed by SP (reason) or CR (no reason): 13 bytes, compared byte by byte (every response
// passes here; a string copy and a regex per response cost more than the check).
const CONTINUE_PREFIX = Buffer.from('HTTP/1.1 100 ', 'latin1')
const CONTINUE_PREFIX_LENGTH = CONTINUE_PREFIX.length
// A 100 head longer than this is not one worth skipping: hand it to undici, which refuses it.
const MAX_INTERIM_HEAD_BYTES = 8 * 1024
const HEAD_END = Buffer.from('\r\n\r\n')

type Verdict = 'more' | 'final' | number

/** Whether byte `i` of a response can be byte `i` of a `100` status line. */
function continueByte(i: number, b: number): boolean {
  if (i === 7) return b === 0x30 || b === 0x31 // HTTP/1.0 or HTTP/1.1
  if (i === 12) return b === 0x20 || b === 0x0d // SP before a reason, or CR with none
  return b === CONTINUE_PREFIX[i]
}

/** 'more': undecided; 'final': a non-100 head starts here; a number: the length of a whole 100 head to drop. */
export function inspectHead(bytes: Buffer): Verdict {
  const n = Math.min(bytes.length, CONTINUE_PREFIX_LENGTH)
  for (let i = 0; i < n; i++) if (!continueByte(i, bytes[i] as number)) return 'final'
  if (n < CONTINUE_PREFIX_LENGTH) return 'more'
  const end = bytes.indexOf(HEAD_END)
  if ((end === -1 ? bytes.length : end) > MAX_INTERIM_HEAD_BYTES) return 'final'
  return end === -1 ? 'more' : end + HEAD_END.length
}

/** Installs the filter on one upstream connection. */
export function skipUnsolicitedContinue(socket: Socket): void {
  let armed = false
  let held: Buffer | undefined
  const write = socket.write
  // Explicit parameters rather than a rest array: this runs for every write on the connection.
  socket.write = function (this: Socket, chunk: unknown, encoding?: unknown, cb?: unknown) {
    if (!armed && typeof chunk === 'string' && REQUEST_LINE.test(chunk)) armed = true
    return (write as (c: unknown, e?: unknown, f?: unknown) => boolean).call(this, chunk, encoding, cb)
  } as Socket['write']
  const read = socket.read
  socket.read = function (this: Socket, size?: number) {
    // read(0) is the stream's own refill nudge (maybeReadMore, resume): it returns no data and must take none.
    if (size === 0) return read.call(this, 0)
    for (;;) {
      if (!armed) {
        const chunk = read.call(this, size) as Buffer | null
        if (held === undefined) return chunk
        const out = chunk === null ? held : Buffer.concat([held, chunk])
        held = undefined
        return out
      }
      if (held !== undefined) {
        const verdict = inspectHead(held)
        if (verdict === 'final') {
          // What is held starts the final response: hand it on now; the stream asks again for the rest.
          armed = false
          const out = held
          held = undefined
          return out
        }
        if (verdict !== 'more') {
          held = verdict === held.length ? undefined : held.subarray(verdict)
          continue
        }
      }
      const chunk = read.call(this) as Buffer | null
      if (chunk === null) return null
      held = held === undefined ? chunk : Buffer.concat([held, chunk])
    }
  } as Socket['read']
}

/** Wraps an undici connector so every connection it makes gets the filter. */
export function withContinueFilter(connect: buildConnector.connector): buildConnector.connector {
  return (options, callback) => {
    // The callback's overloads take (null, socket) or (error, null); the pair is passed on as it came.
    const done = callback as (err: Error | null, socket: Socket | null) => void
    connect(options, (err, socket) => {
      if (err === null && socket !== null) skipUnsolicitedContinue(socket)
      done(err, socket)
    })
  }
}
