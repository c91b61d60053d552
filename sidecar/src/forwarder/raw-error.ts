import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { errorBody } from './respond.ts'

/**
 * Answers on a raw socket that has no ServerResponse (a parse error, a
 * refused WebSocket upgrade) in the same JSON shape as every other refusal,
 * then closes it: after such an error the byte stream cannot be trusted.
 */
export function writeRawError(socket: Duplex, err: unknown): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const { status, headers, body } = errorBody(err)
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`]
  for (const [name, value] of Object.entries(headers)) {
    if (name !== 'connection' && name !== 'content-length') lines.push(`${name}: ${value}`)
  }
  lines.push(`content-length: ${Buffer.byteLength(body)}`, 'connection: close', '', body)
  socket.end(lines.join('\r\n'))
}
