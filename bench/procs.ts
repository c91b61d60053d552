/**
 * Process plumbing the benchmarks share: start a child pinned to a core,
 * read what it prints, and read its CPU time and memory from /proc.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

const children: ChildProcess[] = []
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
})

/** Starts `cmd` on one core (`taskset`); killed when the benchmark exits. */
export function pinned(core: number, cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn('taskset', ['-c', String(core), cmd, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(env === undefined ? {} : { env }),
  })
  children.push(child)
  return child
}

/** The first line of the child's stdout that matches. */
export async function firstLine(child: ChildProcess, match: RegExp): Promise<string> {
  let buf = ''
  for await (const chunk of child.stdout ?? []) {
    buf += chunk
    const line = buf.split('\n').find((l) => match.test(l))
    if (line) return line
  }
  throw new Error(`process ended before printing ${match}`)
}

export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : 0
  } catch {
    return 0
  }
}

/** CPU milliseconds (utime + stime) of a process, from /proc (clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return 0
  }
}

/** The process and all its descendants (a Python server with workers, a shell and what it started). */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.split(' ')[1])
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)])
    } catch {
      // gone since readdir
    }
  }
  const out = [pid]
  for (let i = 0; i < out.length; i++) out.push(...(parents.get(out[i] as number) ?? []))
  return out
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Waits for the `svidecar started` log line a sidecar child writes on stderr (its listeners' addresses) and
 * returns it parsed; the log so far is in the error when it never comes. Stdout is the caller's to drain.
 */
export async function sidecarStarted(
  child: ChildProcess,
  name: string,
  timeoutMs = 10_000,
): Promise<Record<string, unknown>> {
  let log = ''
  child.stderr?.on('data', (d) => {
    if (log.length < 65_536) log += d
  })
  const deadline = Date.now() + timeoutMs
  while (!log.includes('svidecar started') && Date.now() < deadline) await sleep(50)
  const line = log.split('\n').find((l) => l.includes('svidecar started'))
  if (!line) throw new Error(`${name} did not start:\n${log}`)
  return JSON.parse(line) as Record<string, unknown>
}
