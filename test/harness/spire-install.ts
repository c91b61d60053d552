/**
 * Builds spire-server and spire-agent at a pinned release into the cache, once.
 *
 * `go install github.com/spiffe/spire/cmd/...@v1.15.3` would be the obvious
 * recipe, but the module proxy these machines use refuses one of SPIRE's
 * transitive modules (github.com/Keyfactor/ejbca-go-client-sdk v1.1.0), and
 * `go install pkg@version` cannot take a replace directive. So we build from a
 * throwaway wrapper module that requires SPIRE and swaps in the served v1.0.2
 * of that SDK (only SPIRE's EJBCA upstream-authority plugin uses it, which the
 * tests never load).
 *
 * Run as a script (`node test/harness/spire-install.ts`) to prebuild.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cacheDir } from './cache.ts'

export const SPIRE_VERSION = 'v1.15.3'

// A build takes minutes; a lock older than this belongs to a process that died.
const STALE_LOCK_MS = 45 * 60_000

export interface SpireBinaries {
  serverBin: string
  agentBin: string
  version: string
}

export function spireBinaries(): SpireBinaries {
  const bin = join(cacheDir(), `spire-${SPIRE_VERSION}`, 'bin')
  return { serverBin: join(bin, 'spire-server'), agentBin: join(bin, 'spire-agent'), version: SPIRE_VERSION }
}

export function spireInstalled(): boolean {
  const { serverBin, agentBin } = spireBinaries()
  return existsSync(serverBin) && existsSync(agentBin)
}

/** Returns the binaries, building them first when the cache lacks them. */
export async function ensureSpire(): Promise<SpireBinaries> {
  if (spireInstalled()) return spireBinaries()
  const root = join(cacheDir(), `spire-${SPIRE_VERSION}`)
  mkdirSync(root, { recursive: true })
  const lock = join(root, 'build.lock')
  // Parallel test processes may all find the cache empty: one builds, the rest wait for it.
  for (;;) {
    try {
      mkdirSync(lock)
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      if (spireInstalled()) return spireBinaries()
      if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) {
        rmSync(lock, { recursive: true, force: true })
        continue
      }
      await new Promise((r) => setTimeout(r, 2000))
    }
  }
  try {
    if (!spireInstalled()) await build(root)
    return spireBinaries()
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

async function build(root: string): Promise<void> {
  const work = join(root, 'build')
  mkdirSync(work, { recursive: true })
  writeFileSync(
    join(work, 'go.mod'),
    [
      'module svidecar.invalid/spire-build',
      '',
      'go 1.26.6',
      '',
      `require github.com/spiffe/spire ${SPIRE_VERSION}`,
      '',
      'replace github.com/Keyfactor/ejbca-go-client-sdk => github.com/Keyfactor/ejbca-go-client-sdk v1.0.2',
      '',
    ].join('\n'),
  )
  // Build next to the final place, then rename: a half-written binary is never mistaken for a build.
  const staging = join(root, `bin.partial-${process.pid}`)
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging)
  const started = Date.now()
  process.stderr.write(
    `# building SPIRE ${SPIRE_VERSION} into ${root} (once; several minutes on a cold cache)\n`,
  )
  const env = {
    ...process.env,
    // The SQLite datastore is cgo; without it the server refuses to start.
    CGO_ENABLED: '1',
    GOMODCACHE: join(cacheDir(), 'go', 'mod'),
    GOCACHE: join(cacheDir(), 'go', 'build'),
    GOTOOLCHAIN: 'auto',
    GOFLAGS: `${process.env.GOFLAGS ?? ''} -mod=mod`.trim(),
  }
  const args = [
    'build',
    '-trimpath',
    '-o',
    `${staging}/`,
    'github.com/spiffe/spire/cmd/spire-server',
    'github.com/spiffe/spire/cmd/spire-agent',
  ]
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn('go', args, { cwd: work, env, stdio: ['ignore', 'inherit', 'inherit'] })
    child.on('error', (err) => reject(new Error(`cannot run go (is Go 1.26 installed?): ${err.message}`)))
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1)))
  })
  if (code !== 0) {
    rmSync(staging, { recursive: true, force: true })
    throw new Error(`go build of SPIRE ${SPIRE_VERSION} failed with exit code ${code} (output above)`)
  }
  const bin = join(root, 'bin')
  rmSync(bin, { recursive: true, force: true })
  renameSync(staging, bin)
  process.stderr.write(`# built SPIRE ${SPIRE_VERSION} in ${Math.round((Date.now() - started) / 1000)} s\n`)
}

if (import.meta.main) {
  const bins = await ensureSpire()
  process.stdout.write(`${bins.serverBin}\n${bins.agentBin}\n`)
}
