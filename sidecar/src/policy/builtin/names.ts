/**
 * Name globs for models, tools and prompts (`gpt-4o*`, `search_*`, `*`):
 * `*` stands for any run of characters, everything else is literal and
 * case-sensitive. Exact names are a map lookup; globs are bucketed by their
 * literal prefix, so a lookup costs one probe per distinct prefix length,
 * not one test per glob.
 */
import { escapeRegExp } from './segment-trie.ts'

export interface NameGlob {
  readonly source: string
  /** The part before the first `*`. */
  readonly prefix: string
  readonly re: RegExp | undefined
}

export function nameGlob(source: string): NameGlob {
  const star = source.indexOf('*')
  if (star === -1) return { source, prefix: source, re: undefined }
  const re = new RegExp(`^${source.split('*').map(escapeRegExp).join('.*')}$`, 's')
  return { source, prefix: source.slice(0, star), re }
}

export function matchName(glob: NameGlob, name: string): boolean {
  return glob.re === undefined ? glob.source === name : glob.re.test(name)
}

export class NameIndex<T> {
  readonly #exact = new Map<string, T[]>()
  readonly #byPrefix = new Map<string, { glob: NameGlob; value: T }[]>()
  #prefixLengths: number[] = []

  insert(glob: NameGlob, value: T): void {
    if (glob.re === undefined) {
      const list = this.#exact.get(glob.source)
      if (list === undefined) this.#exact.set(glob.source, [value])
      else list.push(value)
      return
    }
    const list = this.#byPrefix.get(glob.prefix)
    if (list === undefined) {
      this.#byPrefix.set(glob.prefix, [{ glob, value }])
      if (!this.#prefixLengths.includes(glob.prefix.length)) {
        this.#prefixLengths = [...this.#prefixLengths, glob.prefix.length].sort((a, b) => a - b)
      }
    } else list.push({ glob, value })
  }

  match(name: string, out: T[]): void {
    const exact = this.#exact.get(name)
    if (exact !== undefined) for (let i = 0; i < exact.length; i++) out.push(exact[i] as T)
    const lengths = this.#prefixLengths
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i] as number
      if (len > name.length) break
      const bucket = this.#byPrefix.get(len === name.length ? name : name.slice(0, len))
      if (bucket === undefined) continue
      for (let k = 0; k < bucket.length; k++) {
        const entry = bucket[k] as { glob: NameGlob; value: T }
        if ((entry.glob.re as RegExp).test(name)) out.push(entry.value)
      }
    }
  }
}
