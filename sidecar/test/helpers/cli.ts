/**
 * The `svidecar` CLI as a user runs it: the real bin script in a child
 * process, with its exit code and both output streams.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const bin = fileURLToPath(new URL('../../bin/svidecar.js', import.meta.url))

export interface CliRun {
  code: number
  stdout: string
  stderr: string
}

export function svidecar(...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--conditions=svidecar-source', bin, ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
        resolve({ code, stdout, stderr })
      },
    )
  })
}
