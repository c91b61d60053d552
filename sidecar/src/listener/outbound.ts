/**
 * Outbound: plaintext from the local app on loopback, routed to upstreams.
 * The subject is this workload's own identity; peer sidecars are reached
 * over mTLS with the expected SPIFFE ID checked, external APIs over HTTPS.
 * Requests and WebSocket upgrades alike walk the pipeline (pipeline/build.ts).
 */
import type { IncomingMessage } from 'node:http'
import { createServer } from 'node:http'
import type { McpConfig } from '../config/mcp.ts'
import { handleExpectations } from '../forwarder/expect.ts'
import type { Upstreams } from '../forwarder/upstreams.ts'
import type { Identity } from '../identity/identity.ts'
import type { Providers } from '../lens/llm/providers.ts'
import type { SamplingBudget } from '../lens/mcp/sampling.ts'
import type { Tracing } from '../observe/tracing.ts'
import { buildPipeline } from '../pipeline/build.ts'
import { Exchange } from '../pipeline/exchange.ts'
import type { Stage } from '../pipeline/stage.ts'
import type { PolicyEngine } from '../policy/engine.ts'
import { drainStage } from '../stages/drain.ts'
import { guardStage } from '../stages/guards.ts'
import { ownIdentityStage } from '../stages/identity.ts'
import { policyStage } from '../stages/policy.ts'
import { routeTableStage } from '../stages/route.ts'
import { targetStage } from '../stages/target.ts'
import { traceStage } from '../stages/trace.ts'
import { tracingStage } from '../stages/tracing.ts'
import { upgradeStage } from '../stages/upgrade.ts'
import type { Route } from './routes.ts'
import { type HostPort, httpServerOptions, type ListenerLimits, ProxyListener } from './server.ts'

export interface OutboundOptions {
  name: string
  address: HostPort
  routes: readonly Route[]
  limits: ListenerLimits
  connectTimeoutMs: number
  /** Header names never forwarded (e.g. an inbound peer-ID header an app might echo). */
  strip?: readonly string[]
  /** Decides every request for `http.route` with this workload as the subject. */
  policy?: PolicyEngine
  /** The LLM lens for routes with `lens: llm`. */
  llm?: {
    providers: Providers
    bodyLimit: number
    maxDepth: number
    unknownPaths: 'deny' | 'forward'
  }
  /** Spans per request (the stage exists only when tracing is configured). */
  tracing?: Tracing
  /** LLM token accounting and budgets (stages/usage.ts, stages/budget.ts), once a provider takes the call. */
  metering?: readonly Stage[]
  /** The MCP lens on these paths: JSON-RPC checks, per-message policy, list filtering, session binding. */
  mcp?: McpConfig
  /** MCP sampling counted against the agent's token budgets (lens/mcp/sampling.ts). */
  sampling?: SamplingBudget
}

const ALWAYS_STRIP = ['x-forwarded-client-cert']

export interface OutboundListener {
  readonly listener: ProxyListener
  close(deadlineMs: number): Promise<void>
  destroy(): void
}

export async function startOutbound(
  identity: Identity,
  upstreams: Upstreams,
  options: OutboundOptions,
): Promise<OutboundListener> {
  // One Set for every request of this listener (the exchange copies it only when a stage adds a name).
  const strip = new Set([...ALWAYS_STRIP, ...(options.strip ?? []).map((h) => h.toLowerCase())])
  const server = createServer(httpServerOptions(options.limits))
  const listener = new ProxyListener(options.name, 'outbound', server, options.limits)
  // Expect: 100-continue is answered by the forwarder once the upstream can take the body (forwarder/expect.ts).
  handleExpectations(server)

  const llm =
    options.llm === undefined
      ? undefined
      : { ...options.llm, upstreams, ...(options.policy === undefined ? {} : { policy: options.policy }) }
  // The LLM and MCP lenses are loaded only for a listener that has them (bench/RESULTS.md, "Idle RSS").
  const llmStages = llm === undefined ? undefined : await import('../stages/llm.ts')
  const mcp =
    options.mcp === undefined ? undefined : await mcpLens(options.mcp, options.policy, options.sampling)
  const pipeline = buildPipeline(
    [
      drainStage(listener),
      guardStage({
        maxHeaderCount: options.limits.maxHeaderCount,
        maxBodyBytes: options.limits.maxBodyBytes,
        inbound: false,
      }),
      // The target is checked and rewritten to origin-form before the route table reads it.
      targetStage(),
      routeTableStage(options.routes, upstreams),
      // Every kind of upstream, not only mTLS peers: with no valid SVID the sidecar is not ready and sends nothing.
      ownIdentityStage(identity),
      upgradeStage(),
      ...(options.policy === undefined && options.tracing === undefined ? [] : [traceStage()]),
      ...(options.tracing === undefined ? [] : [tracingStage(options.tracing)]),
      // The lens names the model before the policy decides it; the provider (and its key) only after.
      ...(llm === undefined || llmStages === undefined ? [] : llmStages.llmLensStages(llm)),
      // The MCP lens decides per message (and marks the exchange decided) before the policy stage.
      ...(mcp === undefined ? [] : [mcp]),
      ...(options.policy === undefined ? [] : [policyStage(options.policy)]),
      ...(llm === undefined || llmStages === undefined ? [] : [llmStages.llmProviderStage(llm)]),
      ...(options.metering ?? []),
    ],
    { limits: options.limits, connectTimeoutMs: options.connectTimeoutMs },
  )
  const exchange = (req: IncomingMessage, upgrade: boolean) =>
    new Exchange({ direction: 'outbound', listener: options.name, req, upgrade, strip })

  listener.serve(pipeline, exchange)

  await listener.listen(options.address)
  return {
    listener,
    close: (deadlineMs) => listener.close(deadlineMs),
    destroy: () => listener.destroy(),
  }
}

async function mcpLens(
  mcp: McpConfig,
  policy: PolicyEngine | undefined,
  sampling: SamplingBudget | undefined,
) {
  const { mcpStage } = await import('../stages/mcp.ts')
  return mcpStage({
    paths: mcp.paths,
    maxMessageBytes: mcp.maxMessageBytes,
    maxSessions: mcp.sessions.max,
    sessionIdleTimeoutMs: mcp.sessions.idleTimeout,
    pinTools: mcp.pinTools,
    ...(policy === undefined ? {} : { policy }),
    ...(sampling === undefined ? {} : { sampling }),
  })
}
