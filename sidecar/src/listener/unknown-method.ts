/**
 * Node's parser knows a fixed list of upper-case methods and refuses any other with HPE_INVALID_METHOD. A
 * well-formed method it does not know (`FOO`, or `get`: methods are case-sensitive, RFC 9110 §9.1) is a valid
 * request the sidecar cannot forward, which RFC 9110 §15.6.2 answers with 501; bytes that are no request line
 * at all (a TLS ClientHello on a plaintext port) stay a 400.
 */

// RFC 9110 §5.6.2 tchar.
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/
// Long enough for any registered method (the longest, UPDATEREDIRECTREF, has 17 characters).
const MAX_METHOD = 32

/** The method of the request line the parser refused, when it is a well-formed token followed by a space. */
export function unknownMethod(err: { rawPacket?: unknown; bytesParsed?: unknown }): string | undefined {
  const packet = err.rawPacket
  if (!Buffer.isBuffer(packet)) return undefined
  const at = typeof err.bytesParsed === 'number' ? Math.min(err.bytesParsed, packet.length) : 0
  // The parser fails a few bytes into the method; the request line starts after the previous line ending.
  let start = at
  while (start > 0 && packet[start - 1] !== 0x0a) start--
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
