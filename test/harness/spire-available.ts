/**
 * Whether the real-SPIRE suites can run. Under CI=true a missing SPIRE is a
 * failure, never a skip: the suite exists to prove the library against the
 * real thing. On a laptop without Go it is a loud skip.
 */
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Test } from 'tap'
import { ghostunnelBin, ghostunnelInstalled } from './ghostunnel-install.ts'
import { spireBinaries, spireInstalled } from './spire-install.ts'

/** Written by before.ts when a build failed, with the reason. */
export const UNAVAILABLE_MARKER = resolve('.tap', 'spire-unavailable.txt')

export function spireUnavailableReason(): string | undefined {
  if (spireInstalled() && ghostunnelInstalled()) return undefined
  if (existsSync(UNAVAILABLE_MARKER)) return readFileSync(UNAVAILABLE_MARKER, 'utf8').trim()
  if (!spireInstalled()) {
    return `SPIRE binaries missing at ${spireBinaries().serverBin}; build them with: npx node test/harness/spire-install.ts`
  }
  return `ghostunnel missing at ${ghostunnelBin()}; build it with: npx node test/harness/ghostunnel-install.ts`
}

/**
 * True when SPIRE is there. Otherwise records a failing test (CI) or a
 * skipped one (elsewhere) named `spire:` so the run shows what did not run.
 */
export function requireSpire(t: Test): boolean {
  const reason = spireUnavailableReason()
  if (reason === undefined) return true
  if (process.env.CI === 'true') {
    t.fail(`spire: real SPIRE is required under CI=true but unavailable: ${reason}`)
  } else {
    process.stderr.write(`\n!!! SKIPPING real-SPIRE tests in ${t.name}: ${reason}\n\n`)
    t.test(`spire: real SPIRE suite (${reason})`, { skip: reason }, () => {})
  }
  return false
}
