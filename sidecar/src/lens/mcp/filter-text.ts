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

function splice(text: Buffer, scan: ScannedList, kept: readonly boolean[]): Buffer {
  const edits: Array<{ start: number; end: number; with: Buffer[] }> = []
  if (scan.scoped) {
    // A result filtered per identity must never be shared from a cache (SEP-2549).
    const at = scan.cacheScope
    if (at !== undefined) edits.push({ start: at.start, end: at.end, with: [PRIVATE] })
    else edits.push({ start: scan.resultOpen + 1, end: scan.resultOpen + 1, with: [PRIVATE_MEMBER] })
  }
  // Runs of kept items go as one slice of the text, with the separators between them.
  const parts: Buffer[] = []
  let run = -1
  let last = -1
  const close = () => {
    if (run < 0) return
    if (parts.length > 0) parts.push(COMMA)
    parts.push(text.subarray(scan.starts[run], scan.ends[last]))
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
  edits.push({ start: scan.open + 1, end: scan.close, with: parts })
  edits.sort((a, b) => a.start - b.start)
  const out: Buffer[] = []
  let at = 0
  for (const e of edits) {
    out.push(text.subarray(at, e.start), ...e.with)
    at = e.end
  }
  out.push(text.subarray(at))
  return Buffer.concat(out)
}
