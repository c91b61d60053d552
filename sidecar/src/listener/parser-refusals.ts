/**
 * Reads a refusal of Node's HTTP parser closer than its error code does, from the bytes it refused
 * (`rawPacket`, the chunk being parsed, and `bytesParsed`, where in it the parser stopped):
 *
 * - HPE_INVALID_METHOD: Node knows a fixed list of upper-case methods. A well-formed method it does not know
 *   (`FOO`, or `get`: methods are case-sensitive, RFC 9110 §9.1) is a valid request the sidecar cannot forward,
 *   answered 501 (RFC 9110 §15.6.2); bytes that are no request line at all (a TLS ClientHello on a plaintext
 *   port) stay a 400.
 * - HPE_HEADER_OVERFLOW: Node counts the request line into maxHeaderSize. Over it inside the request line, the
 *   target is what is too long: 414 (RFC 9112 §3); over it among the fields, 431.
 */

// RFC 9110 §5.6.2 tchar.
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/
// Long enough for any registered method (the longest, UPDATEREDIRECTREF, has 17 characters).
const MAX_METHOD = 32
// A method, one space and the start of an origin-form, asterisk-form or absolute-form target: a field line
// cannot look like this (no space may precede its colon, RFC 9112 §5.1), a piece of a field value hardly can.
const REQUEST_LINE_START = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32} (?:\/|\*|[A-Za-z][A-Za-z0-9+.-]*:\/\/)/

interface ParserError {
  rawPacket?: unknown
  bytesParsed?: unknown
}

function where(err: ParserError): { packet: Buffer; at: number } | undefined {
  const packet = err.rawPacket
  if (!Buffer.isBuffer(packet)) return undefined
  const at = typeof err.bytesParsed === 'number' ? Math.max(0, Math.min(err.bytesParsed, packet.length)) : 0
  return { packet, at }
}

/** Where the line holding byte `at` starts: after the previous line feed. */
function lineStart(packet: Buffer, at: number): number {
  return at === 0 ? 0 : packet.lastIndexOf(0x0a, at - 1) + 1
}

/** The method of the request line the parser refused, when it is a well-formed token followed by a space. */
export function unknownMethod(err: ParserError): string | undefined {
  const w = where(err)
  if (w === undefined) return undefined
  const { packet } = w
  // The parser fails a few bytes into the method.
  const start = lineStart(packet, w.at)
  let end = start
  while (
    end < packet.length &&
    end - start <= MAX_METHOD &&
    TCHAR.test(String.fromCharCode(packet[end] as number))
  )
    end++
  if (end === start || end - start > MAX_METHOD || packet[end] !== 0x20) return undefined
  return packet.toString('latin1', start, end)
}

/** Whether a header overflow happened inside the request line (the target is too long), not among the fields. */
export function overflowInRequestLine(err: ParserError): boolean {
  const w = where(err)
  if (w === undefined) return false
  const { packet, at } = w
  const start = lineStart(packet, at)
  if (REQUEST_LINE_START.test(packet.toString('latin1', start, Math.min(packet.length, start + 64))))
    return true
  // A chunk that began inside a long target: the parser stopped where the target ends, before " HTTP/".
  return start === 0 && packet.toString('latin1', at, at + 6) === ' HTTP/'
}
