/**
 * Node binaries of other majors, from the npm `node` package (its preinstall
 * fetches the platform's binary package from the registry), kept in the
 * cache so warm runs do not install again.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { cacheDir } from './cache.ts'

const run = promisify(execFile)

/** The path of a `node` binary of `major`, installing `node@<major>` into the cache on first use. */
export async function nodeBinary(major: number): Promise<string> {
  const dir = join(cacheDir(), `node-${major}`)
  const bin = join(dir, 'node_modules', 'node', 'bin', 'node')
  if (existsSync(bin)) return bin
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ private: true, name: `node-${major}` })}\n`)
  // npm itself runs on the Node running the tests; only the installed package is of the other major.
  await run('npm', ['install', '--no-audit', '--no-fund', '--no-save', `node@${major}`], {
    cwd: dir,
    timeout: 600_000,
  })
  if (!existsSync(bin)) throw new Error(`npm install node@${major} left no binary at ${bin}`)
  return bin
}
