/**
 * The provider key the sidecar injects must never reach the agent (issue 10:
 * never in a response), yet a provider can quote a key back: a self-hosted
 * server or a misconfigured gateway answering 401 with "invalid key <key>",
 * or naming it in `www-authenticate`. So every header value of the answer,
 * and the body of an error answer, has each occurrence of the key replaced.
 * Bodies of successful answers are left alone: providers never echo a key
 * there, and looking for one across chunks would hold back the tail of every
 * streamed event. An error body is small and read whole by its client, so the
 * few bytes held back at each chunk's end (where a key may be cut in two)
 * delay nothing anyone waits for. The provider's own masked hint
 * (`sk-proj-****abcd`) is not the key and passes.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { ResponseHead, ResponseWrapper } from '../../forwarder/http.ts'

export const KEY_MASK = '[redacted]'
const MASK = Buffer.from(KEY_MASK)

/** The wrapper that takes `key` out of this answer, or undefined when the answer cannot hold it. */
export function keyRedaction(key: string, head: ResponseHead): ResponseWrapper | undefined {
  const edits = headerEdits(head.headers, key)
  const body = head.status >= 400
  if (edits === undefined && !body) return undefined
  const remove = edits?.remove ?? []
  // The body's length changes with each key taken out of it.
  if (body) remove.push('content-length')
  const headers = { remove, ...(edits === undefined ? {} : { set: edits.set }) }
  if (!body) return { headers }
  const needle = Buffer.from(key)
  let held: Buffer | undefined
  return {
    headers,
    data(chunk) {
      const buf = held === undefined ? chunk : Buffer.concat([held, chunk])
      const parts: Buffer[] = []
      let from = 0
      for (let at = buf.indexOf(needle); at !== -1; at = buf.indexOf(needle, from)) {
        parts.push(buf.subarray(from, at), MASK)
        from = at + needle.length
      }
      // A key that starts in the last bytes may end in the next chunk: those bytes wait for it.
      const hold = Math.max(from, buf.length - (needle.length - 1))
      parts.push(buf.subarray(from, hold))
      held = hold < buf.length ? Buffer.from(buf.subarray(hold)) : undefined
      return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts)
    },
    end() {
      const rest = held
      held = undefined
      return rest
    },
  }
}

function headerEdits(
  headers: IncomingHttpHeaders,
  key: string,
): { set: Record<string, string>; remove: string[] } | undefined {
  let edits: { set: Record<string, string>; remove: string[] } | undefined
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value === 'string') {
      if (!value.includes(key)) continue
      edits ??= { set: {}, remove: [] }
      edits.set[name] = value.replaceAll(key, KEY_MASK)
    } else if (Array.isArray(value) && value.some((v) => v.includes(key))) {
      // A repeated field (set-cookie) cannot be rewritten as one value: it goes.
      edits ??= { set: {}, remove: [] }
      edits.remove.push(name)
    }
  }
  return edits
}
