import { homedir } from 'node:os'
import { join } from 'node:path'

/**
 * Where slow-to-make test dependencies (the SPIRE build, Go's module and build
 * caches) live. Outside the repository, so a fresh clone reuses them and
 * `git clean` never throws an eight-minute build away.
 */
export function cacheDir(): string {
  const fromEnv = process.env.SVIDECAR_CACHE_DIR
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.cache', 'svidecar')
}
