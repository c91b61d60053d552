/**
 * A list answer filtered as text: {@link scanList} finds the items, each is
 * decided on its name or URI (and parsed only when a decision needs more),
 * and the kept items' own text is joined back into the answer. Nothing is
 * parsed whole or written anew, so filtering costs the scan and the
 * decisions. The result is what filter.ts gives for the parsed answer: the
 * same items kept, a scoped result marked private to caches.
 */
import { type KeepItem, LIST_ITEMS, type ListedItem } from './filter.ts'
import type { ScannedList } from './list-scan.ts'
import type { ListMethod } from './targets.ts'

const COMMA = Buffer.from(',')
const PRIVATE = Buffer.from('"private"')
const PRIVATE_MEMBER = Buffer.from('"cacheScope":"private",')

/** One item of a scanned answer, parsed on first need. */
class TextItem implements ListedItem {
  readonly #text: Buffer
  readonly #start: number
  readonly #end: number
  readonly #anywhere: (key: string) => boolean
  #value: Readonly<Record<string, unknown>> | undefined
  constructor(text: Buffer, start: number, end: number, anywhere: (key: string) => boolean) {
    this.#text = text
    this.#start = start
    this.#end = end
    this.#anywhere = anywhere
  }

  value(): Readonly<Record<string, unknown>> {
    // The scanner checked the item's grammar: this parse cannot fail, and it reads what the client will.
    this.#value ??= JSON.parse(this.#text.toString('utf8', this.#start, this.#end)) as Record<string, unknown>
    return this.#value
  }

  text(): Buffer {
    return this.#text.subarray(this.#start, this.#end)
  }

  sameText(text: Buffer): boolean {
    const length = this.#end - this.#start
    return text.length === length && this.#text.compare(text, 0, length, this.#start, this.#end) === 0
  }

  mayHold(key: string): boolean {
    if (!this.#anywhere(key)) return false
    const own = this.#text.subarray(this.#start, this.#end)
    // An escaped key reads as `key` only after decoding: any backslash counts as a maybe.
    return own.includes(key) || own.includes(0x5c)
  }
}

/**
 * The answer `text` (scanned as `scan`, answering `method`) with only the items `keep` allows; `text` itself when
 * nothing is taken out and the result has no cache scope to force.
 */
export function spliceList(
  text: Buffer,
  scan: ScannedList,
  method: ListMethod,
  keep: KeepItem,
): Buffer | Promise<Buffer> {
  const spec = LIST_ITEMS[method]
  const { starts, ends, keys } = scan
  // Whether a key appears anywhere in the answer (or could, escaped): one search for all items.
  const seen = new Map<string, boolean>()
  const anywhere = (key: string) => {
    let yes = seen.get(key)
    if (yes === undefined) {
      yes = text.includes(key) || text.includes(0x5c)
      seen.set(key, yes)
    }
    return yes
  }
  const answers: Array<boolean | Promise<boolean>> = new Array(keys.length)
  let waiting = false
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]
    const a =
      key === undefined
        ? false
        : keep(spec.resource(key), new TextItem(text, starts[i] as number, ends[i] as number, anywhere))
    if (a instanceof Promise) waiting = true
    answers[i] = a
  }
  const build = (kept: readonly boolean[]): Buffer => {
    if (!scan.scoped && !kept.includes(false)) return text
    return splice(text, scan, kept)
  }
  if (waiting) return Promise.all(answers).then(build)
  return build(answers as boolean[])
}

/**
 * The answer with the list's interior replaced by the kept items (runs of neighbours as one range, with the
 * separators between them) and, for a scoped result, its `cacheScope` made private: text ranges and literals
 * copied once into one buffer.
 */
function splice(text: Buffer, scan: ScannedList, kept: readonly boolean[]): Buffer {
  // The pieces in order: a text range as its start and end, a literal as (-1 - its index, 0).
  const pieces: number[] = []
  const literals: Buffer[] = []
  const range = (start: number, end: number) => {
    if (end > start) pieces.push(start, end)
  }
  const literal = (b: Buffer) => {
    pieces.push(-1 - literals.length, 0)
    literals.push(b)
  }
  const items = () => {
    let run = -1
    let last = -1
    let first = true
    const close = () => {
      if (run < 0) return
      if (!first) literal(COMMA)
      first = false
      range(scan.starts[run] as number, scan.ends[last] as number)
      run = -1
    }
    for (let i = 0; i < kept.length; i++) {
      if (kept[i] === true) {
        if (run < 0) run = i
        last = i
      } else {
        close()
      }
    }
    close()
  }
  const edits: Array<[start: number, end: number, write: () => void]> = [[scan.open + 1, scan.close, items]]
  if (scan.scoped) {
    // A result filtered per identity must never be shared from a cache (SEP-2549).
    const at = scan.cacheScope
    // The result's own cacheScope and its list are siblings: the two edits never overlap.
    if (at !== undefined) edits.push([at.start, at.end, () => literal(PRIVATE)])
    else edits.push([scan.resultOpen + 1, scan.resultOpen + 1, () => literal(PRIVATE_MEMBER)])
    edits.sort((a, b) => a[0] - b[0])
  }
  let at = 0
  for (const [start, end, write] of edits) {
    range(at, start)
    write()
    at = end
  }
  range(at, text.length)
  let size = 0
  for (let i = 0; i < pieces.length; i += 2) {
    const a = pieces[i] as number
    size += a < 0 ? (literals[-1 - a] as Buffer).length : (pieces[i + 1] as number) - a
  }
  const out = Buffer.allocUnsafe(size)
  let pos = 0
  for (let i = 0; i < pieces.length; i += 2) {
    const a = pieces[i] as number
    pos +=
      a < 0 ? (literals[-1 - a] as Buffer).copy(out, pos) : text.copy(out, pos, a, pieces[i + 1] as number)
  }
  return out
}
