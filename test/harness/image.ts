/**
 * What the container image runs, read from the Dockerfile itself, so the
 * benchmark and the image test start the sidecar exactly as the image does
 * (same Node flags) and cannot drift from it.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The ENTRYPOINT's exec form, e.g. ['/nodejs/bin/node', '--max-semi-space-size=1', '/app/sidecar/dist/cli/main.js']. */
export function imageEntrypoint(dockerfile = join(REPO_ROOT, 'Dockerfile')): string[] {
  const line = readFileSync(dockerfile, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('ENTRYPOINT '))
  if (line === undefined) throw new Error(`${dockerfile} has no ENTRYPOINT`)
  const args = JSON.parse(line.slice('ENTRYPOINT '.length)) as unknown
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string'))
    throw new Error('ENTRYPOINT must be in exec form (a JSON array of strings)')
  return args
}

/** The Node flags the image starts the sidecar with. */
export function imageNodeFlags(dockerfile?: string): string[] {
  return imageEntrypoint(dockerfile).filter((a) => a.startsWith('--'))
}
