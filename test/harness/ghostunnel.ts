/**
 * ghostunnel processes for interop tests: a SPIFFE-aware TLS proxy nobody
 * here wrote, fed by the same SPIRE agent. Run under their own uid so the
 * agent's unix attestor gives them their own identity.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ghostunnelBin } from './ghostunnel-install.ts'

export interface Ghostunnel {
  port: number
  log(): string
  close(): Promise<void>
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address()
      srv.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))))
    })
  })
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy()
      resolve(true)
    })
    s.on('error', () => resolve(false))
  })
}

// The cache may sit in a home directory other uids cannot enter: give them a copy they can run.
let sharedCopy: string | undefined
function binaryFor(uid: number | undefined): string {
  if (uid === undefined) return ghostunnelBin()
  if (sharedCopy === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'ghostunnel-'))
    chmodSync(dir, 0o755)
    sharedCopy = join(dir, 'ghostunnel')
    copyFileSync(ghostunnelBin(), sharedCopy)
    chmodSync(sharedCopy, 0o755)
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  }
  return sharedCopy
}

/** Starts `ghostunnel server|client --listen 127.0.0.1:<port> ...` and waits until it listens. */
export async function startGhostunnel(
  mode: 'server' | 'client',
  args: string[],
  options: { workloadApi: string; uid?: number },
): Promise<Ghostunnel> {
  const port = await freePort()
  let log = ''
  const child: ChildProcess = spawn(
    binaryFor(options.uid),
    [mode, '--listen', `127.0.0.1:${port}`, '--use-workload-api-addr', options.workloadApi, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.uid }),
    },
  )
  child.stdout?.on('data', (d) => {
    log += d
  })
  child.stderr?.on('data', (d) => {
    log += d
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const deadline = Date.now() + 30_000
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`ghostunnel ${mode} exited (${child.exitCode}):\n${log}`)
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`ghostunnel ${mode} not listening within 30 s:\n${log}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    port,
    log: () => log,
    close: async () => {
      if (child.exitCode === null) child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
  }
}
