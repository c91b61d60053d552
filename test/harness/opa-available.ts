/**
 * Whether the real-OPA suites can run. Like SPIRE (spire-available.ts):
 * under CI=true a missing OPA is a failure, never a skip; elsewhere a loud
 * skip.
 */
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Test } from 'tap'
import { opaBin, opaInstalled } from './opa-install.ts'

/** Written by before.ts when the OPA build failed, with the reason. */
export const OPA_UNAVAILABLE_MARKER = resolve('.tap', 'opa-unavailable.txt')

export function opaUnavailableReason(): string | undefined {
  if (opaInstalled()) return undefined
  if (existsSync(OPA_UNAVAILABLE_MARKER)) return readFileSync(OPA_UNAVAILABLE_MARKER, 'utf8').trim()
  return `opa missing at ${opaBin()}; build it with: npx node test/harness/opa-install.ts`
}

/** True when OPA is there. Otherwise records a failing test (CI) or a skipped one (elsewhere). */
export function requireOpa(t: Test): boolean {
  const reason = opaUnavailableReason()
  if (reason === undefined) return true
  if (process.env.CI === 'true') {
    t.fail(`opa: a real OPA server is required under CI=true but unavailable: ${reason}`)
  } else {
    process.stderr.write(`\n!!! SKIPPING real-OPA tests in ${t.name}: ${reason}\n\n`)
    t.test(`opa: real OPA suite (${reason})`, { skip: reason }, () => {})
  }
  return false
}
