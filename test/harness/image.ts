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

export type Step =
  | { kind: 'copy'; from?: string; sources: string[]; dest: string }
  | { kind: 'run'; command: string }
  | { kind: 'workdir'; dir: string }

/**
 * The COPY, RUN and WORKDIR instructions of one build stage, in order (one
 * instruction per line; `#` comments skipped). Enough of the Dockerfile
 * language for a test to replay a stage outside Docker.
 */
export function stageSteps(stage: string, dockerfile = join(REPO_ROOT, 'Dockerfile')): Step[] {
  const lines = readFileSync(dockerfile, 'utf8').split('\n')
  const start = lines.findIndex((l) => new RegExp(`^FROM \\S+ AS ${stage}$`, 'i').test(l.trim()))
  if (start === -1) throw new Error(`${dockerfile} has no stage ${stage}`)
  const steps: Step[] = []
  for (const raw of lines.slice(start + 1)) {
    const line = raw.trim()
    if (line.startsWith('FROM ')) break
    if (line === '' || line.startsWith('#')) continue
    const [op, ...rest] = line.split(/\s+/)
    if (op === 'RUN') steps.push({ kind: 'run', command: rest.join(' ') })
    else if (op === 'WORKDIR') steps.push({ kind: 'workdir', dir: rest[0] as string })
    else if (op === 'COPY') {
      const from = rest[0]?.startsWith('--from=') ? rest.shift()?.slice('--from='.length) : undefined
      const dest = rest.pop() as string
      steps.push({ kind: 'copy', ...(from === undefined ? {} : { from }), sources: rest, dest })
    } else if (op !== 'ENV') throw new Error(`stage ${stage}: cannot replay ${op}`)
  }
  return steps
}
