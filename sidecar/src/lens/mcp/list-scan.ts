/**
 * Reads a list answer without building it. Parsing a 1,000-tool answer
 * costs more than the whole budget of filtering it, and the filter needs
 * only where each item's text starts and ends and the one field it is
 * decided on. This reader validates the whole text against the JSON grammar
 * (RFC 8259) as it goes, so it accepts exactly what `JSON.parse` accepts up
 * to its depth limit, and it tokenizes strings the way every JSON parser
 * must; where the two could still read the text differently it gives up
 * instead of guessing, and the caller parses the answer whole:
 *
 * - a member the filter reads (`id`, `result`, the list's key, `cacheScope`,
 *   `ttlMs`, an item's decision field) named twice in its object: parsers
 *   disagree on which one counts;
 * - nesting deeper than {@link MAX_DEPTH};
 * - anything that is not one JSON-RPC message object with a result object
 *   holding the list array.
 */
import type { JsonRpcId } from './jsonrpc.ts'

export interface ScannedList {
  readonly id: JsonRpcId
  /** The id's text range. */
  readonly idStart: number
  readonly idEnd: number
  /** Index of the `{` that opens the result. */
  readonly resultOpen: number
  /** Indexes of the list array's `[` and `]`. */
  readonly open: number
  readonly close: number
  /**
   * The list's elements, one index each (arrays of numbers, not an object per element: a kept scan holds
   * thousands): element `i`'s text is `text.subarray(starts[i], ends[i])`, and `keys[i]` its decision field (a
   * tool's `name`, a resource's `uri`) when it is an object holding a string there.
   */
  readonly starts: readonly number[]
  readonly ends: readonly number[]
  readonly keys: ReadonlyArray<string | undefined>
  /** The value range of the result's `cacheScope`, when it has one. */
  readonly cacheScope: { readonly start: number; readonly end: number } | undefined
  /** The result carries `cacheScope` or `ttlMs` (SEP-2549): a filtered copy must say it is private. */
  readonly scoped: boolean
}

/** Deeper than this the reader gives up; the answer is parsed whole (which has its own limit). */
export const MAX_DEPTH = 256

/** Thrown inside the reader when it gives up; never escapes this module. */
class GiveUp extends Error {}
const GIVE_UP = new GiveUp('the list answer is read whole')

/** What reading past the end gives. */
const END = -1
const QUOTE = 0x22
const BACKSLASH = 0x5c

function isHex(c: number | undefined): boolean {
  if (c === undefined) return false
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39
}

type Member = (keyStart: number, keyEnd: number, escaped: boolean) => boolean

/** Set by {@link stringEnd}: whether the string it read holds an escape. */
let lastEscaped = false

/** The index past the closing quote of the string whose opening quote is at `i`, its grammar checked. */
function stringEnd(s: Buffer, i: number): number {
  // Most strings hold no escape: run to the first byte that needs a look (past the end reads undefined, which stops it).
  let c = s[++i] as number
  while (c !== QUOTE && c !== BACKSLASH && c >= 0x20) c = s[++i] as number
  if (c === QUOTE) {
    lastEscaped = false
    return i + 1
  }
  const n = s.length
  let escaped = false
  while (i < n) {
    const c = s[i++] as number
    if (c === QUOTE) {
      lastEscaped = escaped
      return i
    }
    if (c < 0x20) throw GIVE_UP
    if (c === BACKSLASH) {
      escaped = true
      const e = s[i++]
      if (e === 0x75) {
        if (!(isHex(s[i]) && isHex(s[i + 1]))) throw GIVE_UP
        if (!(isHex(s[i + 2]) && isHex(s[i + 3]))) throw GIVE_UP
        i += 4
      } else if (
        e !== QUOTE &&
        e !== BACKSLASH &&
        e !== 0x2f &&
        e !== 0x62 &&
        e !== 0x66 &&
        e !== 0x6e &&
        e !== 0x72 &&
        e !== 0x74
      ) {
        throw GIVE_UP
      }
    }
  }
  throw GIVE_UP
}

/** The index past the number that starts at `i`, its grammar checked. */
function numberEnd(s: Buffer, i: number): number {
  if (s[i] === 0x2d) i++
  const first = s[i] ?? END
  if (first === 0x30) i++
  else if (first >= 0x31 && first <= 0x39) while (isDigit(s[++i]));
  else throw GIVE_UP
  if (s[i] === 0x2e) {
    if (!isDigit(s[++i])) throw GIVE_UP
    while (isDigit(s[++i]));
  }
  const e = s[i]
  if (e === 0x65 || e === 0x45) {
    const sign = s[++i]
    if (sign === 0x2b || sign === 0x2d) i++
    if (!isDigit(s[i])) throw GIVE_UP
    while (isDigit(s[++i]));
  }
  return i
}

/** The index past `true`, `false` or `null` at `i`. */
function literalEnd(s: Buffer, i: number, c: number): number {
  const word = c === 0x74 ? 'true' : c === 0x66 ? 'false' : 'null'
  if (!same(s, i, word)) throw GIVE_UP
  return i + word.length
}

/** Whether the bytes at `i` are the ASCII text `word`. */
function same(s: Buffer, i: number, word: string): boolean {
  if (i + word.length > s.length) return false
  for (let k = 0; k < word.length; k++) if (s[i + k] !== word.charCodeAt(k)) return false
  return true
}

// What the skipper expects next.
const VALUE = 0
const KEY = 1
const AFTER = 2

class Reader {
  i = 0
  readonly s: Buffer
  readonly n: number
  /** The openers (`{` or `[`) the skipper is inside, innermost last. */
  readonly #open = new Uint8Array(MAX_DEPTH + 1)
  constructor(s: Buffer) {
    this.s = s
    this.n = s.length
  }

  /** Skips whitespace; the code unit there (NaN at the end). */
  peek(): number {
    const s = this.s
    let i = this.i
    let c = s[i]
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = s[++i]
    this.i = i
    return c ?? END
  }

  expect(c: number): void {
    if (this.peek() !== c) throw GIVE_UP
    this.i++
  }

  /** At a `"`: moves past the closing quote. True when the string holds an escape. */
  string(): boolean {
    this.i = stringEnd(this.s, this.i)
    return lastEscaped
  }

  /**
   * Skips one value of any kind at nesting `depth`, checking its grammar: one loop over the text with the open
   * brackets on a stack, no call per token (a call per token costs more than the characters between them).
   */
  value(depth: number): void {
    const s = this.s
    const open = this.#open
    let i = this.i
    let top = 0
    let want = VALUE
    // Just after an opener, where its closer may come at once.
    let fresh = false
    for (;;) {
      let c = s[i]
      while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = s[++i]
      if (want === AFTER) {
        if (top === 0) break
        const inObject = open[top - 1] === 0x7b
        if (c === 0x2c) {
          want = inObject ? KEY : VALUE
          i++
        } else if (c === (inObject ? 0x7d : 0x5d)) {
          top--
          i++
        } else {
          throw GIVE_UP
        }
        continue
      }
      if (fresh) {
        fresh = false
        if (c === (open[top - 1] === 0x7b ? 0x7d : 0x5d)) {
          top--
          i++
          want = AFTER
          continue
        }
      }
      if (want === KEY) {
        if (c !== QUOTE) throw GIVE_UP
        i = stringEnd(s, i)
        c = s[i]
        while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = s[++i]
        if (c !== 0x3a) throw GIVE_UP
        i++
        want = VALUE
        continue
      }
      if (c === QUOTE) i = stringEnd(s, i)
      else if (c === 0x7b || c === 0x5b) {
        if (depth + top >= MAX_DEPTH) throw GIVE_UP
        open[top++] = c
        i++
        fresh = true
        want = c === 0x7b ? KEY : VALUE
        continue
      } else if (c === 0x74 || c === 0x66 || c === 0x6e) i = literalEnd(s, i, c)
      else i = numberEnd(s, i)
      want = AFTER
    }
    this.i = i
  }

  /** The string whose text, quotes included, is `s.slice(start, end)`. */
  decoded(start: number, end: number, escaped: boolean): string {
    // A quote is ASCII, never inside a multi-byte sequence: the slice decodes as it does within the whole text.
    return escaped
      ? (JSON.parse(this.s.toString('utf8', start, end)) as string)
      : this.s.toString('utf8', start + 1, end - 1)
  }

  /** Whether the string whose text is `s.slice(start, end)` is `name`. */
  is(start: number, end: number, escaped: boolean, name: string): boolean {
    if (escaped) return this.decoded(start, end, true) === name
    return end - start - 2 === name.length && same(this.s, start + 1, name)
  }

  /** A request id (a string or a number), read past; undefined for any other value. */
  id(): JsonRpcId | undefined {
    const c = this.s[this.i]
    const start = this.i
    if (c === QUOTE) return this.stringValue()
    if (c === 0x2d || isDigit(c)) {
      this.i = numberEnd(this.s, start)
      return Number(this.s.toString('latin1', start, this.i))
    }
    this.value(1)
    return undefined
  }

  /** At a `"`: the string's value, read past. */
  stringValue(): string {
    const start = this.i
    const escaped = this.string()
    return this.decoded(start, this.i, escaped)
  }

  /**
   * At a `{`: reads the members, handing each key (its text's range, whether escaped) to `member`, which reads
   * the value itself and returns true, or returns false to have it skipped.
   */
  object(depth: number, member: Member | undefined): void {
    if (depth > MAX_DEPTH) throw GIVE_UP
    this.i++
    if (this.peek() === 0x7d) {
      this.i++
      return
    }
    for (;;) {
      if (this.peek() !== QUOTE) throw GIVE_UP
      const keyStart = this.i
      const escaped = this.string()
      const keyEnd = this.i
      this.expect(0x3a)
      if (member === undefined || !member(keyStart, keyEnd, escaped)) {
        this.peek()
        this.value(depth)
      }
      const c = this.peek()
      this.i++
      if (c === 0x7d) return
      if (c !== 0x2c) throw GIVE_UP
    }
  }

  /** At a `[`: reads the elements, handing each one's start to `element`, which must read it. */
  array(depth: number, element: ((start: number) => void) | undefined): void {
    if (depth > MAX_DEPTH) throw GIVE_UP
    this.i++
    if (this.peek() === 0x5d) {
      this.i++
      return
    }
    for (;;) {
      this.peek()
      if (element === undefined) this.value(depth)
      else element(this.i)
      const c = this.peek()
      this.i++
      if (c === 0x5d) return
      if (c !== 0x2c) throw GIVE_UP
    }
  }
}

/**
 * Where the items of the list answer in `text` are: `listKey` is the result's array (`tools`, `resources`, …),
 * `field` the member each item is decided on (`name`, `uri`, `uriTemplate`). Undefined when the text is not one
 * well-formed JSON-RPC message with such a result, or when it holds any of the ambiguities listed above: then
 * the caller parses it whole.
 */
export function scanList(text: Buffer, listKey: string, field: string): ScannedList | undefined {
  const r = new Reader(text)
  let id: JsonRpcId | undefined
  let idSeen = false
  let idStart = -1
  let idEnd = -1
  let resultSeen = false
  let resultOpen = -1
  let open = -1
  let close = -1
  let listed = false
  const starts: number[] = []
  const ends: number[] = []
  const keys: Array<string | undefined> = []
  let cacheScope: { start: number; end: number } | undefined
  let scoped = false

  const item = (start: number) => {
    if (r.s[start] !== 0x7b) {
      r.value(3)
      starts.push(start)
      ends.push(r.i)
      keys.push(undefined)
      return
    }
    let key: string | undefined
    let seen = false
    r.object(4, (keyStart, keyEnd, escaped) => {
      if (!r.is(keyStart, keyEnd, escaped, field)) return false
      if (seen) throw GIVE_UP
      seen = true
      if (r.peek() === QUOTE) key = r.stringValue()
      else {
        key = undefined
        r.value(4)
      }
      return true
    })
    starts.push(start)
    ends.push(r.i)
    keys.push(key)
  }

  const result: Member = (keyStart, keyEnd, escaped) => {
    if (r.is(keyStart, keyEnd, escaped, listKey)) {
      if (listed) throw GIVE_UP
      if (r.peek() !== 0x5b) throw GIVE_UP
      listed = true
      open = r.i
      r.array(2, item)
      close = r.i - 1
      return true
    }
    if (r.is(keyStart, keyEnd, escaped, 'cacheScope')) {
      if (cacheScope !== undefined) throw GIVE_UP
      r.peek()
      const start = r.i
      r.value(2)
      cacheScope = { start, end: r.i }
      scoped = true
      return true
    }
    if (r.is(keyStart, keyEnd, escaped, 'ttlMs')) {
      scoped = true
      return false
    }
    return false
  }

  try {
    if (r.peek() !== 0x7b) return undefined
    r.object(1, (keyStart, keyEnd, escaped) => {
      if (r.is(keyStart, keyEnd, escaped, 'id')) {
        if (idSeen) throw GIVE_UP
        idSeen = true
        r.peek()
        idStart = r.i
        id = r.id()
        idEnd = r.i
        return true
      }
      if (r.is(keyStart, keyEnd, escaped, 'result')) {
        if (resultSeen) throw GIVE_UP
        resultSeen = true
        if (r.peek() !== 0x7b) throw GIVE_UP
        resultOpen = r.i
        r.object(2, result)
        return true
      }
      return false
    })
    // Only whitespace may follow the message.
    r.peek()
    if (r.i !== text.length) return undefined
  } catch (e) {
    if (e === GIVE_UP || e instanceof SyntaxError) return undefined
    throw e
  }
  if (id === undefined || !listed) return undefined
  return { id, idStart, idEnd, resultOpen, open, close, starts, ends, keys, cacheScope, scoped }
}

/**
 * The last few large answers scanned, to know the same answer again without scanning it: servers answer every
 * `tools/list` with the same text but for the request id. An answer that equals a kept one byte for byte
 * outside the id, and holds a string or number token where the id was, has the same grammar and the same items
 * (only shifted by the id's new length). What is kept is a copy: a socket's buffer may be reused.
 */
interface KeptScan {
  readonly text: Buffer
  readonly scan: ScannedList
  readonly listKey: string
  readonly field: string
}

export class ListScanCache {
  readonly #entries: KeptScan[] = []
  readonly #maxBytes: number
  readonly #minBytes: number
  #bytes = 0

  /** Answers under `minBytes` are scanned every time; at most `maxBytes` of answers are kept. */
  constructor(maxBytes: number, minBytes: number) {
    this.#maxBytes = maxBytes
    this.#minBytes = minBytes
  }

  scan(text: Buffer, listKey: string, field: string): ScannedList | undefined {
    if (text.length < this.#minBytes || text.length > this.#maxBytes) return scanList(text, listKey, field)
    for (let i = 0; i < this.#entries.length; i++) {
      const e = this.#entries[i] as KeptScan
      if (e.listKey !== listKey || e.field !== field) continue
      const again = rescan(e.text, e.scan, text)
      if (again !== undefined) return again
    }
    const scan = scanList(text, listKey, field)
    if (scan === undefined) return undefined
    this.#entries.unshift({ text: Buffer.from(text), scan, listKey, field })
    this.#bytes += text.length
    while (this.#bytes > this.#maxBytes) this.#bytes -= (this.#entries.pop() as KeptScan).text.length
    return scan
  }
}

/** `scan` of `kept`, for `text` when it is `kept` with another id; undefined when it is not. */
function rescan(kept: Buffer, scan: ScannedList, text: Buffer): ScannedList | undefined {
  const a = scan.idStart
  const b = scan.idEnd
  if (text.length < a || text.compare(kept, 0, a, 0, a) !== 0) return undefined
  const r = new Reader(text)
  r.i = a
  const c = text[a]
  let id: JsonRpcId | undefined
  try {
    id = c === QUOTE || c === 0x2d || isDigit(c) ? r.id() : undefined
  } catch (e) {
    if (e === GIVE_UP) return undefined
    throw e
  }
  const end = r.i
  if (id === undefined || text.length - end !== kept.length - b) return undefined
  if (text.compare(kept, b, kept.length, end, text.length) !== 0) return undefined
  const shift = end - b
  // The id and the result are members of one object: the items lie wholly before the id or wholly after it.
  if (shift === 0 || scan.resultOpen < a) return { ...scan, id, idEnd: end }
  const moved = (at: number) => at + shift
  return {
    ...scan,
    id,
    idEnd: end,
    resultOpen: moved(scan.resultOpen),
    open: moved(scan.open),
    close: moved(scan.close),
    starts: scan.starts.map(moved),
    ends: scan.ends.map(moved),
    cacheScope:
      scan.cacheScope === undefined
        ? undefined
        : { start: moved(scan.cacheScope.start), end: moved(scan.cacheScope.end) },
  }
}
