/**
 * The policy in force, kept current from its file, for any engine whose
 * policy is a file (the built-in format by default, Cedar with its loader). The directory is
 * watched (editors and Kubernetes ConfigMaps replace files by rename, which
 * a watch on the file itself would miss) and stat-polled as a fallback; a
 * changed file is reloaded whole. A reload that fails keeps the last good
 * policy, counts the failure and reports why on diagnostics_channel. Until
 * a policy has loaded, everything is denied.
 */
import { createHash } from 'node:crypto'
import { type FSWatcher, readFileSync, statSync, watch } from 'node:fs'
import { basename, dirname } from 'node:path'
import { isSvidecarError } from '../errors/index.ts'
import { BuiltinEngine } from './builtin/engine.ts'
import type { PolicyDecision, PolicyEngine, PolicyRequest } from './engine.ts'
import { publishPolicyReload } from './events.ts'
import { DEFAULT_MAX_POLICY_BYTES, loadPolicyFile } from './file.ts'

/** An engine that decides in process, without waiting for anything. */
type InProcessEngine = Omit<PolicyEngine, 'decide'> & { decide(request: PolicyRequest): PolicyDecision }

/** A policy loaded from a file: the engine that decides with it and how many rules (or policies) it holds. */
export interface LoadedEngine {
  readonly engine: InProcessEngine
  readonly rules: number
}

/** Reads, checks and prepares a policy file; throws a typed error (file:line:col) when it is bad. */
export type PolicyLoader = (path: string, options: { maxBytes: number }) => LoadedEngine

const loadBuiltin: PolicyLoader = (path, options) => {
  const loaded = loadPolicyFile(path, options)
  return { engine: loaded.engine, rules: loaded.engine.rules.length }
}

export interface PolicyStoreOptions {
  maxBytes?: number
  /** Coalesces the burst of events one save produces. */
  debounceMs?: number
  /** Stat-polls the file this often as well (0: never); covers file systems without change events. */
  pollMs?: number
  /** What to do when the first load fails: throw (default) or start denying everything. */
  onInitialFailure?: 'throw' | 'deny-all'
  /** How to load the file; the built-in format by default. */
  load?: PolicyLoader
  /** The engine's name while no policy has loaded (everything denied); `builtin` by default. */
  engineName?: string
}

export interface ReloadCounts {
  readonly success: number
  readonly failure: number
}

export class PolicyStore implements PolicyEngine {
  readonly path: string
  readonly #options: Required<Omit<PolicyStoreOptions, 'onInitialFailure' | 'engineName'>>
  readonly #engineName: string | undefined
  #current: LoadedEngine | undefined
  #engine: InProcessEngine = BuiltinEngine.denyAll()
  #success = 0
  #failure = 0
  #lastError: Error | undefined
  /** Hash of the last content tried, good or bad: an unchanged file is not reloaded. */
  #lastHash: string | undefined
  #lastStat = ''
  #watcher: FSWatcher | undefined
  #timer: NodeJS.Timeout | undefined
  #poll: NodeJS.Timeout | undefined
  #closed = false

  private constructor(path: string, options: PolicyStoreOptions) {
    this.path = path
    this.#options = {
      maxBytes: options.maxBytes ?? DEFAULT_MAX_POLICY_BYTES,
      debounceMs: options.debounceMs ?? 50,
      pollMs: options.pollMs ?? 2000,
      load: options.load ?? loadBuiltin,
    }
    this.#engineName = options.engineName
  }

  /** Loads the file and starts watching it. */
  static open(path: string, options: PolicyStoreOptions = {}): PolicyStore {
    const store = new PolicyStore(path, options)
    const ok = store.reload()
    if (!ok && (options.onInitialFailure ?? 'throw') === 'throw') throw store.#lastError
    store.#watch()
    return store
  }

  get name(): string {
    return this.#current === undefined ? (this.#engineName ?? this.#engine.name) : this.#engine.name
  }

  /** The policy in force, or undefined when none has loaded (everything is denied). */
  get current(): LoadedEngine | undefined {
    return this.#current
  }

  /** How many rules the policy in force has. */
  get rules(): number {
    return this.#current?.rules ?? 0
  }

  get counts(): ReloadCounts {
    return { success: this.#success, failure: this.#failure }
  }

  /** Why the last load failed, if the last load failed. */
  get lastError(): Error | undefined {
    return this.#lastError
  }

  decide(request: PolicyRequest): PolicyDecision {
    return this.#engine.decide(request)
  }

  contextFree(kind: PolicyRequest['resource']['kind']): object | undefined {
    return this.#engine.contextFree?.(kind)
  }

  /**
   * Loads the file now. Returns true when the policy in force was replaced or
   * is unchanged, false when the file is bad (the old policy stays).
   */
  reload(): boolean {
    let hash: string
    try {
      // A file over the cap is not read (the loader refuses it from its size); its identity is enough here.
      const st = statSync(this.path)
      hash =
        st.size > this.#options.maxBytes
          ? `too-large:${st.ino}:${st.size}:${st.mtimeMs}`
          : createHash('sha256').update(readFileSync(this.path)).digest('hex')
    } catch {
      hash = 'unreadable'
    }
    if (hash === this.#lastHash && hash !== 'unreadable') return this.#lastError === undefined
    this.#lastHash = hash
    try {
      const loaded = this.#options.load(this.path, { maxBytes: this.#options.maxBytes })
      this.#current = loaded
      this.#engine = loaded.engine
      this.#lastError = undefined
      this.#success++
      publishPolicyReload({ source: this.path, result: 'success', rules: loaded.rules })
      return true
    } catch (err) {
      if (!(err instanceof Error)) throw err
      this.#lastError = err
      this.#failure++
      publishPolicyReload({
        source: this.path,
        result: 'failure',
        rules: this.#current?.rules ?? 0,
        code: isSvidecarError(err) ? err.code : 'SVD_INTERNAL',
        message: err.message,
      })
      return false
    }
  }

  close(): void {
    this.#closed = true
    this.#watcher?.close()
    if (this.#timer) clearTimeout(this.#timer)
    if (this.#poll) clearInterval(this.#poll)
  }

  #schedule(): void {
    if (this.#closed) return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (!this.#closed) this.reload()
    }, this.#options.debounceMs)
    this.#timer.unref()
  }

  #statKey(): string {
    try {
      const s = statSync(this.path)
      return `${s.ino}:${s.size}:${s.mtimeMs}`
    } catch {
      return 'missing'
    }
  }

  #watch(): void {
    const name = basename(this.path)
    try {
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        // Kubernetes swaps a `..data` symlink, so a change to any entry may be ours.
        if (file === null || file === name || file.startsWith('..')) this.#schedule()
      })
      this.#watcher.on('error', () => {
        // The directory went away; the poll below still notices when it returns.
      })
    } catch {
      this.#watcher = undefined
    }
    if (this.#options.pollMs > 0) {
      this.#lastStat = this.#statKey()
      this.#poll = setInterval(() => {
        const key = this.#statKey()
        if (key !== this.#lastStat) {
          this.#lastStat = key
          this.#schedule()
        }
      }, this.#options.pollMs)
      this.#poll.unref()
    }
  }
}
