/**
 * What building one refusal costs: `new SvidecarError` for a 4xx code (a policy denial) and a 5xx code
 * (an internal failure), called from a few frames deep as stages do. Run:
 * `node --conditions=svidecar-source sidecar/bench/errors.ts`.
 */
import { SvidecarError } from '../src/errors/svidecar-error.ts'

function deep(n: number, make: () => unknown): unknown {
  return n === 0 ? make() : deep(n - 1, make)
}

function time(name: string, make: () => unknown, count = 200_000): void {
  for (let i = 0; i < 50_000; i++) deep(8, make)
  const rounds: number[] = []
  for (let r = 0; r < 5; r++) {
    const c0 = process.cpuUsage()
    for (let i = 0; i < count; i++) deep(8, make)
    const c = process.cpuUsage(c0)
    rounds.push((c.user + c.system) / count)
  }
  rounds.sort((a, b) => a - b)
  process.stdout.write(
    `| ${name} | ${(rounds[2] as number).toFixed(3)} | ${(rounds[0] as number).toFixed(3)}–${(rounds[4] as number).toFixed(3)} |\n`,
  )
}

process.stdout.write(
  `node ${process.version}, ${new Date().toISOString()}\n\n| construct | median µs CPU | range |\n| --- | ---: | ---: |\n`,
)
time('SvidecarError SVD_POLICY_DENIED (403)', () => new SvidecarError('SVD_POLICY_DENIED', 'denied'))
time('SvidecarError SVD_INTERNAL (500)', () => new SvidecarError('SVD_INTERNAL', 'internal'))
time('plain Error', () => new Error('x'))
