/**
 * The PKI the hop benchmarks share: a dev CA, the dev Workload API serving
 * the agent and the MCP server, and the files nginx reads (the server's chain
 * with a DNS name, since nginx checks an upstream's name, not a URI SAN; its
 * key; the bundle it verifies clients with).
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DevCa, DevWorkloadApi } from '@svidecar/certs'

export interface BenchPki {
  ca: DevCa
  api: DevWorkloadApi
  files: { mcpCert: string; mcpKey: string; bundle: string; agentCert: string; agentKey: string }
  /** Writes `text` to `name` under the bench's directory; its path. */
  pem(name: string, text: string): string
}

export async function benchPki(dir: string, agent: string, mcp: string): Promise<BenchPki> {
  const ca = DevCa.create({ trustDomain: 'example.org' })
  const api = await DevWorkloadApi.start({
    ca,
    workloads: [
      { spiffeId: agent, hint: 'agent' },
      { spiffeId: mcp, hint: 'mcp' },
    ],
  })
  const mcpForNginx = ca.issueX509Svid({ spiffeId: mcp, dnsNames: ['mcp.bench'] })
  const pem = (name: string, text: string) => {
    writeFileSync(join(dir, name), text)
    return join(dir, name)
  }
  const files = {
    mcpCert: pem('mcp.pem', mcpForNginx.certChainPem),
    mcpKey: pem('mcp.key', mcpForNginx.keyPem),
    bundle: pem('bundle.pem', api.bundlePem()),
    agentCert: '',
    agentKey: '',
  }
  return { ca, api, files, pem }
}
