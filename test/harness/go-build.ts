/**
 * Builds Go tools at pinned versions into the cache, once, safely under
 * parallel test processes: a lock directory, a staging directory, then an
 * atomic rename, so a half-written binary is never mistaken for a build.
 *
 * `go install pkg@version` would be the obvious recipe, but the module proxy
 * these machines use answers 403 for `@v/list` of some modules, which `go
 * install` consults. Building from a throwaway wrapper module that requires
 * the tool avoids that and lets us pin around modules the proxy refuses.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { cacheDir } from './cache.ts'

// A build takes minutes; a lock older than this belongs to a process that died.
const STALE_LOCK_MS = 45 * 60_000

export interface GoTool {
  /** Cache key, e.g. `spire-v1.15.3`. */
  key: string
  /** The wrapper module's go.mod, without the module line. */
  goMod: string
  /** Files of the wrapper module itself (path → content), for a tool that is our own small program. */
  sources?: Record<string, string>
  packages: string[]
  binaries: string[]
  env?: Record<string, string>
}

export function toolBinDir(tool: Pick<GoTool, 'key'>): string {
  return join(cacheDir(), tool.key, 'bin')
}

export function toolInstalled(tool: Pick<GoTool, 'key' | 'binaries'>): boolean {
  return tool.binaries.every((b) => existsSync(join(toolBinDir(tool), b)))
}

export async function ensureGoTool(tool: GoTool): Promise<string> {
  if (toolInstalled(tool)) return toolBinDir(tool)
  const root = join(cacheDir(), tool.key)
  mkdirSync(root, { recursive: true })
  const lock = join(root, 'build.lock')
  for (;;) {
    try {
      mkdirSync(lock)
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      if (toolInstalled(tool)) return toolBinDir(tool)
      if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) {
        rmSync(lock, { recursive: true, force: true })
        continue
      }
      await new Promise((r) => setTimeout(r, 2000))
    }
  }
  try {
    if (!toolInstalled(tool)) await build(tool, root)
    return toolBinDir(tool)
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

async function build(tool: GoTool, root: string): Promise<void> {
  const work = join(root, 'build')
  mkdirSync(work, { recursive: true })
  writeFileSync(join(work, 'go.mod'), `module svidecar.invalid/${tool.key}-build\n\n${tool.goMod.trim()}\n`)
  for (const [path, content] of Object.entries(tool.sources ?? {})) {
    mkdirSync(dirname(join(work, path)), { recursive: true })
    writeFileSync(join(work, path), content)
  }
  const staging = join(root, `bin.partial-${process.pid}`)
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging)
  const started = Date.now()
  process.stderr.write(`# building ${tool.key} into ${root} (once; minutes on a cold cache)\n`)
  const env = {
    ...process.env,
    // SPIRE's SQLite datastore and ghostunnel's PKCS#11 support are cgo.
    CGO_ENABLED: '1',
    GOMODCACHE: join(cacheDir(), 'go', 'mod'),
    GOCACHE: join(cacheDir(), 'go', 'build'),
    GOTOOLCHAIN: 'auto',
    GOFLAGS: `${process.env.GOFLAGS ?? ''} -mod=mod -buildvcs=false`.trim(),
    ...tool.env,
  }
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn('go', ['build', '-trimpath', '-o', `${staging}/`, ...tool.packages], {
      cwd: work,
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
    })
    child.on('error', (err) => reject(new Error(`cannot run go (is Go 1.26 installed?): ${err.message}`)))
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1)))
  })
  if (code !== 0) {
    rmSync(staging, { recursive: true, force: true })
    throw new Error(`go build of ${tool.key} failed with exit code ${code} (output above)`)
  }
  const bin = join(root, 'bin')
  rmSync(bin, { recursive: true, force: true })
  renameSync(staging, bin)
  process.stderr.write(`# built ${tool.key} in ${Math.round((Date.now() - started) / 1000)} s\n`)
}
