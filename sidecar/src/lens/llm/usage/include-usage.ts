/**
 * OpenAI sends usage on a stream only when asked (`stream_options.include_usage`).
 * To count a stream the sidecar asks on the client's behalf, by splicing the
 * field into the body bytes: the rest of the body stays byte-for-byte what
 * the client sent (no re-serialisation: key order, number spelling, unknown
 * fields and whitespace all pass through). JSON's structural characters are
 * ASCII and never occur inside a UTF-8 multi-byte sequence, so the scan works
 * on the bytes.
 */

export type IncludeUsage =
  /** The client asked for usage itself: nothing to splice, and its usage chunk is its own. */
  | { kind: 'asked' }
  /** The sidecar spliced the request: `body` goes upstream, and the usage chunk must be hidden again. */
  | { kind: 'spliced'; body: Buffer }
  /** Not a JSON object the scanner can follow (the lens refuses those before this runs). */
  | { kind: 'unreadable' }

interface Member {
  key: string
  valueStart: number
  valueEnd: number
}

const FIELD = Buffer.from('"stream_options":{"include_usage":true}')
const INNER = Buffer.from('"include_usage":true')
const TRUE = Buffer.from('true')

export function includeUsage(body: Buffer): IncludeUsage {
  const top = scanObject(body, skipSpace(body, 0))
  if (top === undefined || skipSpace(body, top.end) !== body.length) return { kind: 'unreadable' }
  // The last occurrence is the one JSON.parse (and most providers) act on.
  const options = top.members.findLast((m) => m.key === 'stream_options')
  if (options === undefined) {
    const comma = top.members.length > 0 ? ',' : ''
    return {
      kind: 'spliced',
      body: splice(body, top.end - 1, top.end - 1, Buffer.concat([Buffer.from(comma), FIELD])),
    }
  }
  const inner = scanObject(body, options.valueStart)
  if (inner === undefined) {
    // `stream_options: null` (or any non-object): replace the value.
    return {
      kind: 'spliced',
      body: splice(body, options.valueStart, options.valueEnd, FIELD.subarray(FIELD.indexOf('{'))),
    }
  }
  const flag = inner.members.findLast((m) => m.key === 'include_usage')
  if (flag !== undefined) {
    if (body.subarray(flag.valueStart, flag.valueEnd).equals(TRUE)) return { kind: 'asked' }
    return { kind: 'spliced', body: splice(body, flag.valueStart, flag.valueEnd, TRUE) }
  }
  // Right after the brace: no need to know how the last member ends.
  const comma = inner.members.length > 0 ? ',' : ''
  return {
    kind: 'spliced',
    body: splice(body, inner.start + 1, inner.start + 1, Buffer.concat([INNER, Buffer.from(comma)])),
  }
}

function splice(body: Buffer, from: number, to: number, insert: Buffer): Buffer {
  return Buffer.concat([body.subarray(0, from), insert, body.subarray(to)])
}

function skipSpace(b: Buffer, i: number): number {
  while (i < b.length) {
    const c = b[i]
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break
    i++
  }
  return i
}

/** The object starting at `i` (a `{`): its members and the index after its `}`; undefined when not one. */
function scanObject(b: Buffer, i: number): { start: number; end: number; members: Member[] } | undefined {
  if (b[i] !== 0x7b) return undefined
  const start = i
  const members: Member[] = []
  i = skipSpace(b, i + 1)
  if (b[i] === 0x7d) return { start, end: i + 1, members }
  for (;;) {
    if (b[i] !== 0x22) return undefined
    const keyEnd = skipString(b, i)
    if (keyEnd === undefined) return undefined
    let key: string
    try {
      key = JSON.parse(b.subarray(i, keyEnd).toString('utf8')) as string
    } catch {
      return undefined
    }
    i = skipSpace(b, keyEnd)
    if (b[i] !== 0x3a) return undefined
    const valueStart = skipSpace(b, i + 1)
    const valueEnd = skipValue(b, valueStart)
    if (valueEnd === undefined) return undefined
    members.push({ key, valueStart, valueEnd })
    i = skipSpace(b, valueEnd)
    if (b[i] === 0x2c) {
      i = skipSpace(b, i + 1)
      continue
    }
    if (b[i] === 0x7d) return { start, end: i + 1, members }
    return undefined
  }
}

/**
 * Index after the string starting at `i` (a `"`). Quotes are found natively (`indexOf`), not byte by byte: a
 * prompt is most of a body, and a byte loop over it cost ~40 µs per 1 KB request before the JIT warmed up.
 */
function skipString(b: Buffer, i: number): number | undefined {
  let from = i + 1
  for (;;) {
    const q = b.indexOf(0x22, from)
    if (q === -1) return undefined
    // A quote preceded by an odd run of backslashes is escaped.
    let k = q - 1
    while (k > i && b[k] === 0x5c) k--
    if ((q - 1 - k) % 2 === 0) return q + 1
    from = q + 1
  }
}

/** Index after the value starting at `i`; nested containers are skipped by counting brackets outside strings. */
function skipValue(b: Buffer, i: number): number | undefined {
  const c = b[i]
  if (c === 0x22) return skipString(b, i)
  if (c === 0x7b || c === 0x5b) {
    let depth = 0
    for (let j = i; j < b.length; j++) {
      const d = b[j]
      if (d === 0x22) {
        const e = skipString(b, j)
        if (e === undefined) return undefined
        j = e - 1
      } else if (d === 0x7b || d === 0x5b) depth++
      else if (d === 0x7d || d === 0x5d) {
        depth--
        if (depth === 0) return j + 1
      }
    }
    return undefined
  }
  // A number, true, false or null: up to the next delimiter.
  let j = i
  while (j < b.length) {
    const d = b[j]
    if (d === 0x2c || d === 0x7d || d === 0x5d || d === 0x20 || d === 0x09 || d === 0x0a || d === 0x0d) break
    j++
  }
  return j > i ? j : undefined
}
