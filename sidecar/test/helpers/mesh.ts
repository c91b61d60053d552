/**
 * A two-sidecar mesh on one machine: the dev Workload API issues an agent
 * identity and an MCP-server identity; sidecar A (the agent's) routes its
 * outbound traffic over mTLS to sidecar B (the server's), which hands it to
 * the echo app. Everything binds to 127.0.0.1:0.
 */
import { Writable } from 'node:stream'
import { DevWorkloadApi, type DevWorkloadApiOptions } from '@svidecar/certs'
import type { Test } from 'tap'
import { parseConfig } from '../../src/config/index.ts'
import { createLogger, type Logger } from '../../src/observe/log.ts'
import { Sidecar } from '../../src/sidecar.ts'
import { EchoApp } from './echo-app.ts'

export const AGENT = 'spiffe://example.org/agent'
export const MCP = 'spiffe://example.org/mcp'

const quick = () => ({ next: () => 50, reset() {} })
// Several sidecars share this process and its event channels; their logs would repeat each other.
const quiet = createLogger({ level: 'error', stream: { write: () => true } })
// Audit lines on process.stdout would land in the TAP stream.
const discard = () =>
  new Writable({
    write(_chunk, _encoding, done) {
      done()
    },
  })

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
    identity: { backoff: quick },
    logger: options.logger ?? quiet,
    auditStdout: options.auditStdout ?? discard(),
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

  const serverSidecar = await Sidecar.start(
    parseConfig(
      `
workloadApi: { socket: "${endpoint}", hint: mcp }
admin: { address: "127.0.0.1:0" }
drainTimeout: 2s
inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "${app.url}"
    authorize: ${options.authorize ?? `{ exact: "${options.allow ?? AGENT}" }`}
${options.serverYaml ?? ''}`,
      'server.yaml',
      {},
    ),
    sidecarOptions(options),
  )
  t.teardown(() => serverSidecar.destroy())
  const inboundPort = serverSidecar.addresses.inbound.public?.port ?? 0

  const agentSidecar = await Sidecar.start(
    parseConfig(
      `
workloadApi: { socket: "${endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
drainTimeout: 2s
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - upstream: mcp
upstreams:
  mcp:
    url: "https://127.0.0.1:${inboundPort}"
    spiffe: { exact: "${MCP}" }
${options.agentYaml ?? ''}`,
      'agent.yaml',
      {},
    ),
    sidecarOptions(options),
  )
  t.teardown(() => agentSidecar.destroy())
  await serverSidecar.identity.waitReady(options.readyTimeoutMs ?? 5000)
  await agentSidecar.identity.waitReady(options.readyTimeoutMs ?? 5000)
  const out = agentSidecar.addresses.outbound.egress
  return { app, agentSidecar, serverSidecar, outboundUrl: `http://127.0.0.1:${out?.port}`, inboundPort }
}
