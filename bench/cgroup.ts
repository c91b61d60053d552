/**
 * A CPU- and memory-limited cgroup for one benchmark contender, as Kubernetes
 * limits a sidecar (`resources.limits.cpu: 1`, `memory: 256Mi`), instead of
 * pinning it to a core with `taskset`. cgroup v1 (separate `cpu` and `memory`
 * hierarchies) or v2 (one unified hierarchy); where neither is writable,
 * `createCgroup` says why and the benchmark leaves the cgroup cells out.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const ROOT = '/sys/fs/cgroup'

export interface CgroupLimits {
  /** CPUs as a CFS quota: 1 = 100 ms of CPU per 100 ms period, spread over any cores. */
  cpus: number
  memoryBytes: number
}

export interface Cgroup {
  /** The `cgroup.procs` files a process is written into (one per hierarchy). */
  readonly procs: string[]
  readonly description: string
  /** Starts `cmd` inside the cgroup (it joins before it execs, so nothing runs outside the limits). */
  spawn(cmd: string, args: string[]): ChildProcess
  /** Removes the cgroup's directories; its processes must have exited. */
  remove(): void
}

const PERIOD_US = 100_000

/** A cgroup named `name`, or the reason none could be made here. */
export function createCgroup(name: string, limits: CgroupLimits): Cgroup | string {
  const made: string[] = []
  const undo = () => {
    for (const d of made.reverse()) {
      try {
        rmdirSync(d)
      } catch {
        // still has a process, or already gone
      }
    }
  }
  const quota = String(Math.round(limits.cpus * PERIOD_US))
  try {
    if (existsSync(join(ROOT, 'cgroup.controllers'))) {
      // v2: one directory; the parent must delegate the cpu and memory controllers.
      const controllers = readFileSync(join(ROOT, 'cgroup.subtree_control'), 'utf8')
      if (!/\bcpu\b/.test(controllers) || !/\bmemory\b/.test(controllers))
        return `cgroup v2 at ${ROOT} does not delegate the cpu and memory controllers (cgroup.subtree_control: "${controllers.trim()}")`
      const dir = join(ROOT, name)
      mkdirSync(dir)
      made.push(dir)
      writeFileSync(join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`)
      writeFileSync(join(dir, 'memory.max'), String(limits.memoryBytes))
      return group([join(dir, 'cgroup.procs')], `cgroup v2 ${dir}`, made)
    }
    const cpu = join(ROOT, 'cpu', name)
    const memory = join(ROOT, 'memory', name)
    mkdirSync(cpu)
    made.push(cpu)
    mkdirSync(memory)
    made.push(memory)
    writeFileSync(join(cpu, 'cpu.cfs_period_us'), String(PERIOD_US))
    writeFileSync(join(cpu, 'cpu.cfs_quota_us'), quota)
    writeFileSync(join(memory, 'memory.limit_in_bytes'), String(limits.memoryBytes))
    return group(
      [join(cpu, 'cgroup.procs'), join(memory, 'cgroup.procs')],
      `cgroup v1 ${cpu}, ${memory}`,
      made,
    )
  } catch (err) {
    undo()
    return `cannot make a cgroup under ${ROOT}: ${(err as Error).message}`
  }
}

function group(procs: string[], description: string, dirs: string[]): Cgroup {
  return {
    procs,
    description,
    spawn(cmd, args) {
      // The shell writes its own pid into each cgroup, then becomes the command.
      const join = procs.map((p) => `echo $$ > '${p}'`).join(' && ')
      return spawn('sh', ['-c', `${join} && exec "$0" "$@"`, cmd, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    },
    remove() {
      for (const d of [...dirs].reverse()) {
        try {
          rmdirSync(d)
        } catch {
          // a process is still in it: it goes when the kernel reaps it; nothing else to do
        }
      }
    },
  }
}
