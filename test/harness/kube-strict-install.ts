/**
 * kube-strict (kube-strict/main.go): a small Go program that decodes manifests into the Kubernetes API types
 * of a pinned release with unknown and duplicate fields refused, the check the npm schemas cannot make. Built
 * once into the cache like kustomize, from the Go module proxy; the cache key follows the source, so an edit
 * rebuilds it.
 *
 * Run as a script (`node test/harness/kube-strict-install.ts`) to prebuild.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ensureGoTool, type GoTool, toolBinDir } from './go-build.ts'

/** The Kubernetes release whose types decide: the one kubernetes-models 5.1.0's schemas come from, or later. */
export const KUBERNETES_API_VERSION = 'v0.36.3'

const SOURCE = readFileSync(new URL('kube-strict/main.go', import.meta.url), 'utf8')

const KUBE_STRICT: GoTool = {
  key: `kube-strict-${KUBERNETES_API_VERSION}-${createHash('sha256').update(SOURCE).digest('hex').slice(0, 12)}`,
  goMod: `go 1.26.6

require (
	k8s.io/api ${KUBERNETES_API_VERSION}
	k8s.io/apimachinery ${KUBERNETES_API_VERSION}
	sigs.k8s.io/yaml v1.6.0
)`,
  sources: { 'cmd/kube-strict/main.go': SOURCE },
  packages: ['./cmd/kube-strict'],
  binaries: ['kube-strict'],
  env: { CGO_ENABLED: '0' },
}

export async function ensureKubeStrict(): Promise<string> {
  await ensureGoTool(KUBE_STRICT)
  return join(toolBinDir(KUBE_STRICT), 'kube-strict')
}

if (import.meta.main) process.stdout.write(`${await ensureKubeStrict()}\n`)
