/**
 * kustomize, at a pinned release, built once into the cache like OPA: the
 * deploy tests render `deploy/kubernetes/` with it exactly as
 * `kubectl kustomize` (which embeds the same code) would, without needing a
 * kubectl on the machine. Pure Go, built without cgo.
 *
 * Run as a script (`node test/harness/kustomize-install.ts`) to prebuild.
 */
import { join } from 'node:path'
import { ensureGoTool, type GoTool, toolBinDir, toolInstalled } from './go-build.ts'

export const KUSTOMIZE_VERSION = 'v5.8.1'

const KUSTOMIZE: GoTool = {
  key: `kustomize-${KUSTOMIZE_VERSION}`,
  goMod: `go 1.26.6

require sigs.k8s.io/kustomize/kustomize/v5 ${KUSTOMIZE_VERSION}`,
  packages: ['sigs.k8s.io/kustomize/kustomize/v5'],
  binaries: ['kustomize'],
  env: { CGO_ENABLED: '0' },
}

export function kustomizeBin(): string {
  return join(toolBinDir(KUSTOMIZE), 'kustomize')
}

export function kustomizeInstalled(): boolean {
  return toolInstalled(KUSTOMIZE)
}

export async function ensureKustomize(): Promise<string> {
  await ensureGoTool(KUSTOMIZE)
  return kustomizeBin()
}

if (import.meta.main) process.stdout.write(`${await ensureKustomize()}\n`)
