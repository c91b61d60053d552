/**
 * fortio, the load generator behind Istio's and agentgateway's published
 * latency numbers, at a pinned release, built once into the cache. The
 * benchmark uses it for open-loop cells: a Go client's tail is steadier than
 * a Node one's, so the baseline's p99 measures the path rather than the
 * generator. (Releases after v1.66 need a module the proxy here refuses.)
 */
import { join } from 'node:path'
import { ensureGoTool, type GoTool, toolBinDir } from './go-build.ts'

export const FORTIO_VERSION = 'v1.66.5'

const FORTIO: GoTool = {
  key: `fortio-${FORTIO_VERSION}`,
  goMod: `go 1.22

require fortio.org/fortio ${FORTIO_VERSION}`,
  packages: ['fortio.org/fortio'],
  binaries: ['fortio'],
}

export function fortioBin(): string {
  return join(toolBinDir(FORTIO), 'fortio')
}

export async function ensureFortio(): Promise<string> {
  await ensureGoTool(FORTIO)
  return fortioBin()
}

if (import.meta.main) process.stdout.write(`${await ensureFortio()}\n`)
