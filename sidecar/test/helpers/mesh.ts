/**
 * A two-sidecar mesh on one machine: the dev Workload API issues an agent
 * identity and an MCP-server identity; sidecar A (the agent's) routes its
 * outbound traffic over mTLS to sidecar B (the server's), which hands it to
 * the echo app. Everything binds to 127.0.0.1:0.
 */
import type { Writable } from 'node:stream'
import { DevWorkloadApi, type DevWorkloadApiOptions } from '@svidecar/certs'
import type { Test } from 'tap'
import type { Logger } from '../../src/observe/log.ts'
import type { Sidecar } from '../../src/sidecar.ts'
import { EchoApp } from './echo-app.ts'
import { startTestSidecar } from './test-sidecar.ts'

export const AGENT = 'spiffe://example.org/agent'
export const MCP = 'spiffe://example.org/mcp'

export interface Sidecars {
  app: EchoApp
  agentSidecar: Sidecar
  serverSidecar: Sidecar
  /** http://127.0.0.1:port of A's outbound listener: where the agent sends its requests. */
  outboundUrl: string
  /** 127.0.0.1:port of B's inbound mTLS listener. */
  inboundPort: number
}

export interface Mesh extends Sidecars {
  api: DevWorkloadApi
}

export interface SidecarsOptions {
  serverYaml?: string
  agentYaml?: string
  /** Who may call the server's inbound listener (default: the agent). */
  allow?: string
  /** The server's whole `authorize:` value as YAML, instead of `allow`. */
  authorize?: string
  /** How long to wait for the first SVIDs (SPIRE may take seconds). */
  readyTimeoutMs?: number
  /** Both sidecars' logger (default: errors only, discarded). */
  logger?: Logger
  /** Where both sidecars write `audit.output: stdout` lines (default: nowhere). */
  auditStdout?: Writable
}

export interface MeshOptions extends SidecarsOptions {
  api?: DevWorkloadApiOptions
}

function sidecarOptions(options: SidecarsOptions) {
  return {
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.auditStdout === undefined ? {} : { auditStdout: options.auditStdout }),
  }
}

export async function startMesh(t: Test, options: MeshOptions = {}): Promise<Mesh> {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp' },
    ],
    ...options.api,
  })
  t.teardown(() => api.close())
  return { api, ...(await startSidecars(t, api.endpoint, options)) }
}

/** The two sidecars and the app, against any Workload API serving the hints `agent` and `mcp`. */
export async function startSidecars(
  t: Test,
  endpoint: string,
  options: SidecarsOptions = {},
): Promise<Sidecars> {
  const app = await EchoApp.start()
  t.teardown(() => app.close())

  const serverSidecar = await startTestSidecar(
    t,
    { socket: endpoint, hint: 'mcp' },
    `inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "${app.url}"
    authorize: ${options.authorize ?? `{ exact: "${options.allow ?? AGENT}" }`}
${options.serverYaml ?? ''}`,
    sidecarOptions(options),
  )
  const inboundPort = serverSidecar.addresses.inbound.public?.port ?? 0

  const agentSidecar = await startTestSidecar(
    t,
    { socket: endpoint, hint: 'agent' },
    `outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - upstream: mcp
upstreams:
  mcp:
    url: "https://127.0.0.1:${inboundPort}"
    spiffe: { exact: "${MCP}" }
${options.agentYaml ?? ''}`,
    sidecarOptions(options),
  )
  await serverSidecar.identity.waitReady(options.readyTimeoutMs ?? 5000)
  await agentSidecar.identity.waitReady(options.readyTimeoutMs ?? 5000)
  const out = agentSidecar.addresses.outbound.egress
  return { app, agentSidecar, serverSidecar, outboundUrl: `http://127.0.0.1:${out?.port}`, inboundPort }
}
