/**
 * Both sidecars in front of a raw upstream app, with every path a test
 * needs to reach it:
 *
 *   outbound: raw client → A (Host raw.test) ──plaintext──► raw app
 *   mesh:     raw client → A (Host mesh.test) ──mTLS──► B ──► raw app
 *   inbound:  raw mTLS client (the agent's SVID) ──► B ──► raw app
 *
 * plus routes to a port nobody listens on (gone.test) and to a TLS port
 * that resets every connection (reset.test). Logs of A are captured.
 */
import { once } from 'node:events'
import { type AddressInfo, createServer } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { DevWorkloadApi } from '@svidecar/certs'
import type { Test } from 'tap'
import { matchId } from 'workload-api-client'
import { Identity } from '../../src/identity/identity.ts'
import { createLogger } from '../../src/observe/log.ts'
import type { Sidecar } from '../../src/sidecar.ts'
import { ClientTls } from '../../src/tls/client-tls.ts'
import { tlsParameters } from '../../src/tls/profiles.ts'
import { AGENT, MCP } from './mesh.ts'
import { RawClient } from './raw-http.ts'
import { quickBackoff, startTestSidecar } from './test-sidecar.ts'

export interface RawMesh {
  agentSidecar: Sidecar
  serverSidecar: Sidecar
  /** Port of A's outbound listener. */
  outboundPort: number
  /** Port of B's inbound mTLS listener. */
  inboundPort: number
  /** JSON log records A wrote (info and above). */
  logs: Record<string, unknown>[]
  /** A raw client on A's outbound listener. */
  outboundClient(): Promise<RawClient>
  /** A raw client on B's inbound listener, over mTLS with the agent's SVID (what a peer sidecar would open). */
  inboundClient(): Promise<RawClient>
}

async function closedPort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  await new Promise((r) => server.close(r))
  return port
}

/** A TCP server that resets every connection it accepts, before any TLS byte. */
async function resetter(t: Test): Promise<number> {
  const server = createServer((socket) => socket.resetAndDestroy())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise((r) => server.close(r)))
  return (server.address() as AddressInfo).port
}

export async function startRawMesh(t: Test, appPort: number): Promise<RawMesh> {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp' },
    ],
  })
  t.teardown(() => api.close())
  const serverSidecar = await startTestSidecar(
    t,
    { socket: api.endpoint, hint: 'mcp' },
    `inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "http://127.0.0.1:${appPort}"
    authorize: { exact: "${AGENT}" }
`,
  )
  const inboundPort = serverSidecar.addresses.inbound.public?.port ?? 0

  const logs: Record<string, unknown>[] = []
  const captured = createLogger({
    level: 'info',
    stream: { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) },
  })
  const agentSidecar = await startTestSidecar(
    t,
    { socket: api.endpoint, hint: 'agent' },
    `outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - { match: { host: raw.test }, upstream: raw }
      - { match: { host: mesh.test }, upstream: mcp }
      - { match: { host: gone.test }, upstream: gone }
      - { match: { host: reset.test }, upstream: reset }
upstreams:
  raw: { url: "http://127.0.0.1:${appPort}", allowPlaintext: true }
  mcp: { url: "https://127.0.0.1:${inboundPort}", spiffe: { exact: "${MCP}" } }
  gone: { url: "http://127.0.0.1:${await closedPort()}", allowPlaintext: true }
  reset: { url: "https://127.0.0.1:${await resetter(t)}", spiffe: { exact: "${MCP}" } }
`,
    { logger: captured },
  )
  await serverSidecar.identity.waitReady(5000)
  await agentSidecar.identity.waitReady(5000)
  const outboundPort = agentSidecar.addresses.outbound.egress?.port ?? 0

  // The raw mTLS client presents the agent's SVID and checks it reached the MCP server's sidecar.
  const agent = Identity.start({ socket: api.endpoint, hint: 'agent', backoff: quickBackoff })
  t.teardown(() => agent.close())
  await agent.waitReady(5000)
  const tls = new ClientTls(agent, {
    upstream: 'inbound-test',
    authorizer: matchId(MCP),
    params: tlsParameters('intermediate', 'TLSv1.2'),
    connectTimeoutMs: 5000,
  })

  return {
    agentSidecar,
    serverSidecar,
    outboundPort,
    inboundPort,
    logs,
    outboundClient: () => RawClient.connect(t, outboundPort),
    inboundClient: async () => {
      const socket = await new Promise<TLSSocket>((resolve, reject) =>
        tls.connect({ hostname: '127.0.0.1', port: inboundPort }, (err, s) =>
          err ? reject(err) : resolve(s as TLSSocket),
        ),
      )
      t.teardown(() => {
        socket.destroy()
      })
      return new RawClient(socket)
    },
  }
}
