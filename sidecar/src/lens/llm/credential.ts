/**
 * A provider key the sidecar holds for its agents: from a file (a
 * Kubernetes Secret mount) or an environment variable. The file's directory
 * is watched (Kubernetes replaces Secret files by swapping a `..data`
 * symlink, which a watch on the file would miss) and stat-polled as a
 * fallback, as policy/store.ts does for the policy. A file that goes
 * missing or holds no usable key keeps the last good key in force; before
 * any key has loaded, calls to the provider are refused. The key itself is
 * only ever handed to the header it belongs in: reports say where it came
 * from and why it was refused, never what it is.
 */
import { type FSWatcher, readFileSync, statSync, watch } from 'node:fs'
import { basename, dirname } from 'node:path'

/** Provider keys are short tokens; a file bigger than this is not a key. */
export const MAX_KEY_BYTES = 8192

export type CredentialSource = { file: string } | { env: string }

export interface CredentialReport {
  result: 'loaded' | 'rejected'
  /** Where from: `file <path>` or `environment variable <NAME>`. */
  source: string
  /** Why a load was rejected (never the key). */
  reason?: string
}

export interface CredentialOptions {
  pollMs?: number
  debounceMs?: number
  onReport?: (report: CredentialReport) => void
}

export class Credential {
  readonly source: string
  #key: string | undefined
  #problem: string | undefined
  #lastStat = ''
  #watcher: FSWatcher | undefined
  #poll: NodeJS.Timeout | undefined
  #timer: NodeJS.Timeout | undefined
  #closed = false
  readonly #path: string | undefined
  readonly #options: CredentialOptions

  constructor(from: CredentialSource, options: CredentialOptions = {}, env: NodeJS.ProcessEnv = process.env) {
    this.#options = options
    if ('file' in from) {
      this.#path = from.file
      this.source = `file ${from.file}`
      this.reload()
      this.#watch()
    } else {
      this.source = `environment variable ${from.env}`
      this.#accept(env[from.env], 'it is not set')
    }
  }

  /** The key in force, or undefined when none has ever loaded. */
  get key(): string | undefined {
    return this.#key
  }

  /** Why no key is in force (or why the last reload was refused). */
  get problem(): string | undefined {
    return this.#problem
  }

  /** Reads the file again; a bad file keeps the last good key. */
  reload(): void {
    const path = this.#path
    if (path === undefined) return
    let text: string | undefined
    let missing = 'it cannot be read'
    try {
      const st = statSync(path)
      if (st.size > MAX_KEY_BYTES) missing = `it is over ${MAX_KEY_BYTES} bytes`
      else text = readFileSync(path, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      missing = code === 'ENOENT' ? 'it does not exist' : `it cannot be read (${code ?? 'error'})`
    }
    this.#accept(text, missing)
  }

  close(): void {
    this.#closed = true
    this.#watcher?.close()
    if (this.#poll) clearInterval(this.#poll)
    if (this.#timer) clearTimeout(this.#timer)
  }

  #accept(raw: string | undefined, missing: string): void {
    let reason: string | undefined
    const key = raw?.trim()
    if (key === undefined) reason = missing
    else if (key.length === 0) reason = 'it is empty'
    else if (!/^[\x21-\x7e]+$/.test(key))
      reason = 'it holds characters a key never has (spaces, control or non-ASCII)'
    if (reason === undefined && key !== undefined) {
      const changed = key !== this.#key || this.#problem !== undefined
      this.#key = key
      this.#problem = undefined
      if (changed) this.#options.onReport?.({ result: 'loaded', source: this.source })
      return
    }
    const problem = `the key in ${this.source} is unusable: ${reason}`
    if (problem === this.#problem) return
    this.#problem = problem
    this.#options.onReport?.({
      result: 'rejected',
      source: this.source,
      ...(reason === undefined ? {} : { reason }),
    })
  }

  #schedule(): void {
    if (this.#closed) return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (!this.#closed) this.reload()
    }, this.#options.debounceMs ?? 50)
    this.#timer.unref()
  }

  #statKey(): string {
    try {
      const s = statSync(this.#path as string)
      return `${s.ino}:${s.size}:${s.mtimeMs}`
    } catch {
      return 'missing'
    }
  }

  #watch(): void {
    const path = this.#path as string
    const name = basename(path)
    try {
      this.#watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file === null || file === name || file.startsWith('..')) this.#schedule()
      })
      this.#watcher.on('error', () => {
        // The directory went away; the poll still notices when it returns.
      })
    } catch {
      this.#watcher = undefined
    }
    const pollMs = this.#options.pollMs ?? 2000
    if (pollMs > 0) {
      this.#lastStat = this.#statKey()
      this.#poll = setInterval(() => {
        const key = this.#statKey()
        if (key !== this.#lastStat) {
          this.#lastStat = key
          this.#schedule()
        }
      }, pollMs)
      this.#poll.unref()
    }
  }
}
