/**
 * opa, the Open Policy Agent server behind the `engine: opa` decision
 * service, at a pinned release, built once into the cache beside SPIRE. The
 * policy tests start it as a real server process (`opa run --server`).
 * Built without cgo: the server needs no Wasm runtime, and a static binary
 * spares CI a C toolchain for this one.
 *
 * Run as a script (`node test/harness/opa-install.ts`) to prebuild.
 */
import { join } from 'node:path'
import { ensureGoTool, type GoTool, toolBinDir, toolInstalled } from './go-build.ts'

export const OPA_VERSION = 'v1.22.3'

const OPA: GoTool = {
  key: `opa-${OPA_VERSION}`,
  goMod: `go 1.26.6

require github.com/open-policy-agent/opa ${OPA_VERSION}`,
  packages: ['github.com/open-policy-agent/opa'],
  binaries: ['opa'],
  env: { CGO_ENABLED: '0' },
}

export function opaBin(): string {
  return join(toolBinDir(OPA), 'opa')
}

export function opaInstalled(): boolean {
  return toolInstalled(OPA)
}

export async function ensureOpa(): Promise<string> {
  await ensureGoTool(OPA)
  return opaBin()
}

if (import.meta.main) process.stdout.write(`${await ensureOpa()}\n`)
