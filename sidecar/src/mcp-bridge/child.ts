/**
 * One stdio MCP server as a child process: JSON-RPC messages in on its stdin,
 * one per line, and out on its stdout. Whatever on its stdout is not a
 * JSON-RPC message (a stray `console.log`, a banner) is logged and skipped;
 * its stderr is the child's own log and passes through untouched.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import type { Writable } from 'node:stream'
import type { Logger } from '../observe/log.ts'
import { asMessage, type JsonRpcMessage, preview } from './jsonrpc.ts'
import { LineSplitter, type OversizedLine } from './lines.ts'

export interface ChildOptions {
  command: string
  args: readonly string[]
  maxLineBytes: number
  logger: Logger
  /** Where the child's stderr goes (default: this process's stderr). */
  stderr?: Writable
  env?: NodeJS.ProcessEnv
  cwd?: string
}

export interface ChildExit {
  code: number | null
  signal: NodeJS.Signals | null
  /** Why, in words: an exit status, a signal, or a spawn failure such as ENOENT. */
  reason: string
}

export interface ChildEvents {
  message(m: JsonRpcMessage): void
  oversized(info: OversizedLine): void
  exit(info: ChildExit): void
}

/** How long a child gets to leave after its stdin closes, and again after SIGTERM (MCP stdio shutdown). */
const STOP_GRACE_MS = 2000

export class StdioChild {
  readonly #options: ChildOptions
  readonly #events: ChildEvents
  readonly #proc: ChildProcess
  #exited: ChildExit | undefined
  readonly #exitedPromise: Promise<ChildExit>

  constructor(options: ChildOptions, events: ChildEvents) {
    this.#options = options
    this.#events = events
    const log = options.logger
    this.#proc = spawn(options.command, [...options.args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    })
    const proc = this.#proc
    this.#exitedPromise = new Promise((resolve) => {
      let spawnError: Error | undefined
      proc.once('error', (err) => {
        spawnError = err
        // A failed spawn emits no 'exit'; 'close' follows either way.
      })
      proc.once('close', (code, signal) => {
        const reason =
          spawnError !== undefined
            ? `cannot start ${options.command}: ${spawnError.message}`
            : signal !== null
              ? `killed by ${signal}`
              : `exited with status ${code}`
        this.#exited = { code, signal, reason }
        resolve(this.#exited)
        this.#events.exit(this.#exited)
      })
    })
    // Writes to a child that has gone fail with EPIPE; the exit handler answers what was pending.
    proc.stdin?.on('error', (err) => log.debug('stdio server stdin closed', { reason: err.message }))
    proc.stderr?.pipe(options.stderr ?? process.stderr, { end: false })
    const lines = new LineSplitter(options.maxLineBytes, {
      line: (text) => this.#onLine(text),
      oversized: (info) => {
        log.warn('stdio server wrote a line over the line cap: dropped', {
          code: 'SVD_BRIDGE_MESSAGE_TOO_LARGE',
          bytes: info.bytes,
          maxLineBytes: options.maxLineBytes,
        })
        this.#events.oversized(info)
      },
    })
    proc.stdout?.on('data', (chunk: Buffer) => lines.push(chunk))
    proc.stdout?.on('end', () => lines.end())
  }

  get pid(): number | undefined {
    return this.#proc.pid
  }

  get alive(): boolean {
    return this.#exited === undefined
  }

  get exited(): Promise<ChildExit> {
    return this.#exitedPromise
  }

  /** Writes one message as one line; false when the child is gone. */
  send(m: JsonRpcMessage): boolean {
    const stdin = this.#proc.stdin
    if (!this.alive || stdin === null || stdin.destroyed || stdin.writableEnded) return false
    stdin.write(`${JSON.stringify(m)}\n`)
    return true
  }

  /** MCP's stdio shutdown: close stdin, then SIGTERM, then SIGKILL, each after a grace period. */
  async stop(graceMs = STOP_GRACE_MS): Promise<ChildExit> {
    if (this.#exited !== undefined) return this.#exited
    this.#proc.stdin?.end()
    if (await this.#exitsWithin(graceMs)) return this.#exitedPromise
    this.#proc.kill('SIGTERM')
    if (await this.#exitsWithin(graceMs)) return this.#exitedPromise
    this.#proc.kill('SIGKILL')
    return this.#exitedPromise
  }

  async #exitsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms)
    })
    const done = await Promise.race([this.#exitedPromise.then(() => true as const), timeout])
    clearTimeout(timer)
    return done
  }

  #onLine(text: string): void {
    const log = this.#options.logger
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      log.warn('stdio server wrote a line that is not JSON: skipped', { line: preview(text) })
      return
    }
    for (const item of Array.isArray(value) ? value : [value]) {
      const m = asMessage(item)
      if (typeof m === 'string') {
        log.warn(`stdio server wrote JSON that is not a JSON-RPC message (${m}): skipped`, {
          line: preview(text),
        })
        continue
      }
      this.#events.message(m)
    }
  }
}
