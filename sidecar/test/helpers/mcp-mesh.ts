/**
 * MCP over a sidecar mesh: the dev Workload API issues two agent
 * identities and the MCP server's; each agent has its own sidecar
 * (outbound), the server's sidecar (inbound, MCP lens on /mcp) hands the
 * traffic to a real MCP server, all over mTLS on 127.0.0.1:0.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DevWorkloadApi } from '@svidecar/certs'
import type { Test } from 'tap'
import type { Sidecar } from '../../src/sidecar.ts'
import { startTestSidecar } from './test-sidecar.ts'

export const AGENT = 'spiffe://example.org/agent'
export const AGENT2 = 'spiffe://example.org/agent2'
export const SERVER = 'spiffe://example.org/mcp'

export interface McpMeshOptions {
  /** The MCP server's address, http://127.0.0.1:port (its endpoint is `mcpPath`). */
  upstream: string
  /** The server sidecar's policy file (built-in format). */
  serverPolicy?: string
  /** The server sidecar's whole `policy:` section as YAML, instead of `serverPolicy` (another engine). */
  serverPolicyYaml?: string
  /** Each agent sidecar's policy; with it the agents' outbound listeners run the MCP lens too. */
  agentPolicy?: string
  /** The server sidecar's `mcp:` section as flow YAML. */
  serverMcp?: string
  mcpPath?: string
  /** Each agent sidecar's `mcp:` section as flow YAML (with `agentPolicy`; `{ paths: [mcpPath] }` otherwise). */
  agentMcp?: string
  /** More top-level YAML for each agent's sidecar (e.g. `budgets:`). */
  agentExtra?: string
}

export interface McpMesh {
  api: DevWorkloadApi
  server: Sidecar
  /** http://127.0.0.1:port/mcp of each agent's outbound listener. */
  agentUrl: string
  agent2Url: string
}

function policyFile(t: Test, name: string, text: string): string {
  const file = join(t.testdir(), name)
  writeFileSync(file, text)
  return file
}

export async function startMcpMesh(t: Test, o: McpMeshOptions): Promise<McpMesh> {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: AGENT2, hint: 'agent2' },
      { spiffeId: SERVER, hint: 'mcp' },
    ],
  })
  t.teardown(() => api.close())
  const path = o.mcpPath ?? '/mcp'
  const serverPolicy =
    o.serverPolicyYaml ??
    (o.serverPolicy === undefined
      ? ''
      : `policy: { file: "${policyFile(t, 'server.yaml', o.serverPolicy)}" }`)
  const server = await startTestSidecar(
    t,
    { socket: api.endpoint, hint: 'mcp', drainTimeout: '1s' },
    `inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "${o.upstream}"
    authorize: { oneOf: ["${AGENT}", "${AGENT2}"] }
    mcp: ${o.serverMcp ?? `{ paths: ["${path}"] }`}
${serverPolicy}
`,
  )
  const inboundPort = server.addresses.inbound.public?.port ?? 0
  const agentPolicy =
    o.agentPolicy === undefined ? '' : `policy: { file: "${policyFile(t, 'agent.yaml', o.agentPolicy)}" }`
  const agent = async (hint: string) => {
    const sidecar = await startTestSidecar(
      t,
      { socket: api.endpoint, hint, drainTimeout: '1s' },
      `outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: mcp }]
    ${o.agentPolicy === undefined ? '' : `mcp: ${o.agentMcp ?? `{ paths: ["${path}"] }`}`}
upstreams:
  mcp:
    url: "https://127.0.0.1:${inboundPort}"
    spiffe: { exact: "${SERVER}" }
${agentPolicy}
${o.agentExtra ?? ''}
`,
    )
    await sidecar.identity.waitReady(5000)
    return `http://127.0.0.1:${sidecar.addresses.outbound.egress?.port}${path}`
  }
  await server.identity.waitReady(5000)
  const [agentUrl, agent2Url] = await Promise.all([agent('agent'), agent('agent2')])
  return { api, server, agentUrl, agent2Url }
}
