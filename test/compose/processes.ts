/**
 * Child processes for a test that plays a compose topology: each in its own
 * process group with its output in a log file, all killed at teardown (and
 * on exit, should the test die first).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'

const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of live) signal(child, 'SIGKILL')
})

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, sig)
  } catch {
    // Gone already.
  }
}

export class Processes {
  readonly #dir: string
  readonly #children = new Map<string, ChildProcess>()

  constructor(logDir: string) {
    this.#dir = logDir
  }

  start(
    name: string,
    command: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    user?: { uid: number; gid: number },
  ): ChildProcess {
    const fd = openSync(this.logPath(name), 'a')
    const child = spawn(command, args, { env, detached: true, stdio: ['ignore', fd, fd], ...user })
    closeSync(fd)
    live.add(child)
    child.on('exit', () => live.delete(child))
    this.#children.set(name, child)
    return child
  }

  logPath(name: string): string {
    return join(this.#dir, `${name}.log`)
  }

  log(name: string, lines = 30): string {
    try {
      return readFileSync(this.logPath(name), 'utf8').split('\n').slice(-lines).join('\n')
    } catch {
      return '(no log)'
    }
  }

  /** Throws with the log when the named process has exited. */
  assertRunning(name: string): void {
    const child = this.#children.get(name)
    if (child === undefined || child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${name} exited (${child?.exitCode ?? child?.signalCode}):\n${this.log(name)}`)
  }

  /** SIGTERM to every group, SIGKILL after 10 s; resolves when all are gone. */
  async stopAll(): Promise<void> {
    await Promise.all(
      [...this.#children.values()].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
        signal(child, 'SIGTERM')
        const timer = setTimeout(() => signal(child, 'SIGKILL'), 10_000)
        await exited
        clearTimeout(timer)
      }),
    )
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address()
      srv.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

/** Polls until `check` resolves true; throws `describe()` at the deadline. */
export async function until(
  check: () => Promise<boolean>,
  describe: () => string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${describe()}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

/**
 * The text with each `from` replaced by its `to`; every `from` must occur, so a file that changed under the
 * test fails here instead of silently keeping a compose-only value.
 */
export function substitute(
  text: string,
  file: string,
  replacements: ReadonlyArray<readonly [string, string]>,
): string {
  let out = text
  for (const [from, to] of replacements) {
    if (!out.includes(from))
      throw new Error(`${file}: expected to find ${JSON.stringify(from)} to substitute`)
    out = out.replaceAll(from, to)
  }
  return out
}
