/**
 * spire-server and spire-agent at a pinned release, built once into the cache.
 *
 * The module proxy refuses one of SPIRE's transitive modules
 * (github.com/Keyfactor/ejbca-go-client-sdk v1.1.0); the wrapper module swaps
 * in the served v1.0.2. Only SPIRE's EJBCA upstream-authority plugin uses
 * it, and the tests never load that plugin.
 *
 * Run as a script (`node test/harness/spire-install.ts`) to prebuild.
 */
import { join } from 'node:path'
import { ensureGoTool, type GoTool, toolBinDir, toolInstalled } from './go-build.ts'

export const SPIRE_VERSION = 'v1.15.3'

const SPIRE: GoTool = {
  key: `spire-${SPIRE_VERSION}`,
  goMod: `go 1.26.6

require github.com/spiffe/spire ${SPIRE_VERSION}

replace github.com/Keyfactor/ejbca-go-client-sdk => github.com/Keyfactor/ejbca-go-client-sdk v1.0.2`,
  packages: ['github.com/spiffe/spire/cmd/spire-server', 'github.com/spiffe/spire/cmd/spire-agent'],
  binaries: ['spire-server', 'spire-agent'],
}

export interface SpireBinaries {
  serverBin: string
  agentBin: string
  version: string
}

export function spireBinaries(): SpireBinaries {
  const bin = toolBinDir(SPIRE)
  return { serverBin: join(bin, 'spire-server'), agentBin: join(bin, 'spire-agent'), version: SPIRE_VERSION }
}

export function spireInstalled(): boolean {
  return toolInstalled(SPIRE)
}

export async function ensureSpire(): Promise<SpireBinaries> {
  await ensureGoTool(SPIRE)
  return spireBinaries()
}

if (import.meta.main) {
  const bins = await ensureSpire()
  process.stdout.write(`${bins.serverBin}\n${bins.agentBin}\n`)
}
