/**
 * Inbound: mTLS from other sidecars to the local app. The verified peer
 * SPIFFE ID is the subject; it travels to the app in one header, after every
 * copy the client sent of that header (and of client-certificate headers)
 * was removed. This port never speaks plaintext. Requests and WebSocket
 * upgrades alike walk the pipeline (pipeline/build.ts).
 */
import type { IncomingMessage } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { TLSSocket } from 'node:tls'
import type { IdMatcher } from 'workload-api-client'
import type { McpConfig } from '../config/mcp.ts'
import { handleExpectations } from '../forwarder/expect.ts'
import { Upstream } from '../forwarder/upstreams.ts'
import type { Identity } from '../identity/identity.ts'
import type { Tracing } from '../observe/tracing.ts'
import { buildPipeline } from '../pipeline/build.ts'
import { Exchange } from '../pipeline/exchange.ts'
import type { PolicyEngine } from '../policy/engine.ts'
import { drainStage } from '../stages/drain.ts'
import { guardStage } from '../stages/guards.ts'
import { peerIdentityStage } from '../stages/identity.ts'
import { policyStage } from '../stages/policy.ts'
import { fixedRouteStage } from '../stages/route.ts'
import { targetStage } from '../stages/target.ts'
import { traceStage } from '../stages/trace.ts'
import { tracingStage } from '../stages/tracing.ts'
import { upgradeStage } from '../stages/upgrade.ts'
import { recheckPeer } from '../tls/peer-recheck.ts'
import type { TlsParameters } from '../tls/profiles.ts'
import { peerIdOf, ServerTls } from '../tls/server-tls.ts'
import { type HostPort, httpServerOptions, type ListenerLimits, ProxyListener } from './server.ts'

export interface InboundOptions {
  name: string
  address: HostPort
  /** The local app, http:// on loopback. */
  forwardTo: URL
  peerIdHeader: string
  authorizer: IdMatcher
  /** Versions and suites of the listener's TLS profile. */
  tls: TlsParameters
  handshakeTimeoutMs: number
  limits: ListenerLimits
  connectTimeoutMs: number
  /** Decides every request for `http.route`; without one, the authorizer alone says who may call. */
  policy?: PolicyEngine
  /** Spans per request (the stage exists only when tracing is configured). */
  tracing?: Tracing
  /** The MCP lens on these paths: JSON-RPC checks, per-message policy, list filtering, session binding. */
  mcp?: McpConfig
}

// Headers a client could use to pose as someone else; only the sidecar speaks for the peer.
const CLIENT_CERT_HEADERS = [
  'x-forwarded-client-cert',
  'x-client-cert',
  'ssl-client-cert',
  'x-ssl-client-cert',
]

export interface InboundListener {
  readonly listener: ProxyListener
  readonly tls: ServerTls
  close(deadlineMs: number): Promise<void>
  destroy(): Promise<void>
}

export async function startInbound(identity: Identity, options: InboundOptions): Promise<InboundListener> {
  const tls = new ServerTls(identity, {
    listener: options.name,
    authorizer: options.authorizer,
    params: options.tls,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
  })
  const appSpec = { name: `${options.name}-app`, url: options.forwardTo, kind: 'plaintext' as const }
  const app = new Upstream(appSpec, {
    connectTimeoutMs: options.connectTimeoutMs,
    idleTimeoutMs: options.limits.idleTimeoutMs,
    requestTimeoutMs: options.limits.requestTimeoutMs,
    minVersion: options.tls.minVersion,
  })
  const header = options.peerIdHeader.toLowerCase()
  // One Set for every request of this listener (the exchange copies it only when a stage adds a name).
  const strip = new Set([header, ...CLIENT_CERT_HEADERS])
  const server = createHttpsServer({ ...httpServerOptions(options.limits), ...tls.serverOptions() })
  const listener = new ProxyListener(options.name, 'inbound', server, options.limits)
  tls.attach(server)
  // Expect: 100-continue is answered by the forwarder once the upstream can take the body (forwarder/expect.ts).
  handleExpectations(server)

  // The MCP lens is loaded only for a listener that has one (bench/RESULTS.md, "Idle RSS").
  const mcp = options.mcp === undefined ? undefined : await mcpLens(options.mcp, options.policy)
  const pipeline = buildPipeline(
    [
      drainStage(listener),
      guardStage({
        maxHeaderCount: options.limits.maxHeaderCount,
        maxBodyBytes: options.limits.maxBodyBytes,
        inbound: true,
      }),
      targetStage(),
      fixedRouteStage(app),
      peerIdentityStage(identity, header, recheckPeer),
      upgradeStage(),
      ...(options.policy === undefined && options.tracing === undefined ? [] : [traceStage()]),
      ...(options.tracing === undefined ? [] : [tracingStage(options.tracing)]),
      // The MCP lens decides per message (and marks the exchange decided) before the policy stage.
      ...(mcp === undefined ? [] : [mcp]),
      ...(options.policy === undefined ? [] : [policyStage(options.policy)]),
    ],
    { limits: options.limits, connectTimeoutMs: options.connectTimeoutMs },
  )
  const exchange = (req: IncomingMessage, upgrade: boolean) => {
    const peer = peerIdOf(req.socket as TLSSocket)
    return new Exchange({
      direction: 'inbound',
      listener: options.name,
      req,
      upgrade,
      strip,
      ...(peer === undefined ? {} : { peer }),
    })
  }

  listener.serve(pipeline, exchange)

  await listener.listen(options.address)
  return {
    listener,
    tls,
    async close(deadlineMs) {
      await listener.close(deadlineMs)
      tls.close()
      await app.close()
    },
    async destroy() {
      listener.destroy()
      tls.close()
      await app.destroy()
    },
  }
}

async function mcpLens(mcp: McpConfig, policy: PolicyEngine | undefined) {
  const { mcpStage } = await import('../stages/mcp.ts')
  return mcpStage({
    paths: mcp.paths,
    maxMessageBytes: mcp.maxMessageBytes,
    maxSessions: mcp.sessions.max,
    sessionIdleTimeoutMs: mcp.sessions.idleTimeout,
    pinTools: mcp.pinTools,
    ...(policy === undefined ? {} : { policy }),
  })
}
