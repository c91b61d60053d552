/**
 * tap's `before` hook: makes sure the SPIRE binaries, the OPA server and the
 * Debian tools the suites drive exist before any test file starts, so the one slow build
 * happens once and outside the tests' timeouts. A failure never stops the run here; it is written down, and each
 * real-SPIRE test file then fails (CI=true) or skips loudly (spire-available.ts), and
 * so does each real-OPA one (opa-available.ts).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { ensureDebianTools } from './debian.ts'
import { ensureGhostunnel } from './ghostunnel-install.ts'
import { ensureKubeStrict } from './kube-strict-install.ts'
import { ensureKustomize } from './kustomize-install.ts'
import { OPA_UNAVAILABLE_MARKER } from './opa-available.ts'
import { ensureOpa } from './opa-install.ts'
import { UNAVAILABLE_MARKER } from './spire-available.ts'
import { ensureSpire } from './spire-install.ts'

rmSync(UNAVAILABLE_MARKER, { force: true })
rmSync(OPA_UNAVAILABLE_MARKER, { force: true })
try {
  ensureDebianTools()
} catch (err) {
  // The tests that drive these tools fail with their own message; the rest of the run goes on.
  process.stderr.write(`\n!!! ${err instanceof Error ? err.message : String(err)}\n\n`)
}
try {
  await ensureSpire()
  await ensureGhostunnel()
} catch (err) {
  const reason = err instanceof Error ? err.message : String(err)
  mkdirSync(dirname(UNAVAILABLE_MARKER), { recursive: true })
  writeFileSync(UNAVAILABLE_MARKER, `${reason}\n`)
  const banner = '!'.repeat(72)
  process.stderr.write(
    `\n${banner}\n!!! real SPIRE is unavailable: ${reason}\n` +
      (process.env.CI === 'true'
        ? '!!! CI=true: every spire: test file will FAIL.\n'
        : '!!! the spire: tests will be SKIPPED on this machine (they fail under CI=true).\n') +
      `${banner}\n\n`,
  )
}
try {
  await ensureOpa()
} catch (err) {
  const reason = err instanceof Error ? err.message : String(err)
  mkdirSync(dirname(OPA_UNAVAILABLE_MARKER), { recursive: true })
  writeFileSync(OPA_UNAVAILABLE_MARKER, `${reason}\n`)
  process.stderr.write(
    `\n!!! the OPA server is unavailable: ${reason}\n` +
      (process.env.CI === 'true'
        ? '!!! CI=true: every real-OPA test file will FAIL.\n\n'
        : '!!! the real-OPA tests will be SKIPPED on this machine (they fail under CI=true).\n\n'),
  )
}
try {
  // The Kubernetes manifest tests render deploy/kubernetes/ with it; they fail with this reason when it is missing.
  await ensureKustomize()
} catch (err) {
  process.stderr.write(
    `\n!!! kustomize is unavailable: ${err instanceof Error ? err.message : String(err)}\n\n`,
  )
}
try {
  // kubernetes-strict.test.ts decodes the rendered manifests with it.
  await ensureKubeStrict()
} catch (err) {
  process.stderr.write(
    `\n!!! kube-strict is unavailable: ${err instanceof Error ? err.message : String(err)}\n\n`,
  )
}
