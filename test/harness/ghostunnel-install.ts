/**
 * ghostunnel, the SPIFFE-aware TLS proxy used as an interop peer nobody here
 * wrote, at a pinned release, built once into the cache. One of its modules
 * (go-landlock at a pseudo-version) has no entry in the checksum database
 * the proxy serves, so that one module alone skips the sumdb lookup.
 */
import { join } from 'node:path'
import { ensureGoTool, type GoTool, toolBinDir, toolInstalled } from './go-build.ts'

export const GHOSTUNNEL_VERSION = 'v1.8.4'

const GHOSTUNNEL: GoTool = {
  key: `ghostunnel-${GHOSTUNNEL_VERSION}`,
  goMod: `go 1.25

require github.com/ghostunnel/ghostunnel ${GHOSTUNNEL_VERSION}`,
  packages: ['github.com/ghostunnel/ghostunnel'],
  binaries: ['ghostunnel'],
  env: { GONOSUMDB: 'github.com/landlock-lsm/go-landlock' },
}

export function ghostunnelBin(): string {
  return join(toolBinDir(GHOSTUNNEL), 'ghostunnel')
}

export function ghostunnelInstalled(): boolean {
  return toolInstalled(GHOSTUNNEL)
}

export async function ensureGhostunnel(): Promise<string> {
  await ensureGoTool(GHOSTUNNEL)
  return ghostunnelBin()
}

if (import.meta.main) process.stdout.write(`${await ensureGhostunnel()}\n`)
