/**
 * What the data plane reports, as diagnostics_channel messages. Stages
 * publish; metrics and logs subscribe (wired in sidecar.ts). Publishing costs
 * one branch when nobody listens, so the request path never pays for
 * observers it does not have, and an observer can never block a decision.
 */
import { channel } from 'node:diagnostics_channel'

const CHANNELS = {
  identity: 'svidecar:identity',
  tlsHandshake: 'svidecar:tls:handshake',
  tlsRejected: 'svidecar:tls:rejected',
  request: 'svidecar:request',
  refused: 'svidecar:refused',
  connection: 'svidecar:connection',
  lifecycle: 'svidecar:lifecycle',
  upstreamFailed: 'svidecar:upstream:failed',
  policyDecision: 'svidecar:policy:decision',
  llmUsage: 'svidecar:llm:usage',
} as const

export type Direction = 'inbound' | 'outbound'

export interface IdentityEvent {
  status: 'ready' | 'not-ready'
  spiffeId?: string
  serial?: string
  notAfter?: Date
  generation: number
  reason?: string
  /** The sidecar that published it, when several share one process (the demo, tests). */
  owner?: string
}

export interface TlsHandshakeEvent {
  /** Listener name (inbound) or upstream name (outbound). */
  listener: string
  direction: Direction
  /** Verified, so safe to log; never a metric label. */
  peerId?: string
  /** The serial number of the certificate the peer presented. */
  peerSerial?: string
  resumed: boolean
  protocol?: string
}

export interface TlsRejectedEvent {
  listener: string
  direction: Direction
  /** The sidecar error code the refusal is counted under. */
  code: string
  /** One of a closed set (tls/refusals.ts): safe as a metric label. */
  reason: string
  /** What the reason means, for people. */
  message: string
  /** The finer cause (OpenSSL code, SPIFFE rule): logged, never a label. */
  detail?: string
}

export interface RequestEvent {
  listener: string
  direction: Direction
  method: string
  route?: string
  upstream?: string
  status: number
  /** The sidecar's error code (from the error table) when the sidecar ended the request. */
  code?: string
  /** Why, finer than the code: the upstream's socket or TLS error code, a guard's reason. */
  reason?: string
  /** The client went away before the exchange finished; `status` is then what had been sent, or 0. */
  aborted?: boolean
  durationMs: number
  peerId?: string
}

/**
 * A connection refused or cut before a request reached the proxy's handlers: Node's parser refused the head
 * (400/408/431), the listener was at its connection limit, CONNECT, a keep-alive connection idled out.
 */
export interface RefusedEvent {
  listener: string
  direction: Direction
  code: string
  reason?: string
  /** The status written to the client, or 0 when the connection was closed without one. */
  status: number
}

export interface ConnectionEvent {
  listener: string
  direction: Direction
  event: 'open' | 'close'
}

/** An exchange with an upstream failed: the sidecar answered with `code`, or cut a response already under way. */
export interface UpstreamFailedEvent {
  upstream: string
  code: string
  reason?: string
  /** The client saw `status` (the response had not started) or a reset connection (it had). */
  status: number
  midResponse: boolean
  /** The foreign error behind it (socket, TLS, parser); logged by name, code and message only. */
  cause?: unknown
}

/**
 * One policy decision on a request (the pipeline's policy stage publishes it; the audit log and the decision
 * metrics subscribe). Never a key, a token or a body; `resource` is the canonical name of what was asked for.
 */
export interface PolicyDecisionEvent {
  time: Date
  listener: string
  direction: Direction
  /** Who acts (verified): inbound, the peer; outbound, this workload. */
  subject: string
  /** The other end when known and verified (outbound to a peer sidecar: its SPIFFE ID). */
  peer?: string
  /** The resource kind: http.route, llm.model, mcp.tool, mcp.resource, mcp.prompt, mcp.client. */
  action: string
  /** `GET /path` for http.route; the name or URI otherwise. */
  resource: string
  decision: 'allow' | 'deny'
  ruleId?: string
  reason: string
  /**
   * Set when the decision is not the policy's plain answer: `engine`, the engine could not decide (a
   * fail-closed denial); `condition`, a rule's condition failed to evaluate and the decision was made without it.
   */
  error?: 'engine' | 'condition'
  mode: 'enforce' | 'audit'
  engine: string
  /** The policy denies, but audit mode let the request through. */
  wouldDeny?: boolean
  /** How long the engine took to decide. */
  latencyMs: number
  /** W3C traceparent of the request (passed through, or created by the sidecar when absent). */
  traceparent: string
}

/**
 * What one LLM call used, published when its exchange ends (after its budget settled), for the audit log's
 * `llm.usage` line and the token metrics. The policy decision came earlier, when the tokens were not known;
 * `traceparent` links the two lines.
 */
export interface LlmUsageEvent {
  time: Date
  listener: string
  direction: Direction
  subject?: string
  /** The API (openai.chat, anthropic.messages, ...). */
  api: string
  /** The model the client asked for, as it asked (audit only: never a label). */
  model?: string
  /** `model` when the config names it, else `other`: bounded, for metric labels. */
  modelLabel: string
  provider?: string
  /** The response status (0 when no response started). */
  status: number
  inputTokens: number
  outputTokens: number
  cachedInputTokens?: number
  cacheWriteInputTokens?: number
  /** The figures are the sidecar's estimate (`estimateReason` says why), not the provider's. */
  estimated: boolean
  estimateReason?: string
  /** From the request's arrival to the first output token (streams). */
  timeToFirstTokenMs?: number
  durationMs: number
  /** How the exchange ended: the sidecar's code when it ended it (a budget cut, a refusal). */
  code?: string
  /** The budget the call counted against, and what is left of it after settling. */
  budget?: { names: string[]; remaining: Partial<Record<string, number>> }
  /** The budget refused the call (`before`) or ended its stream (`stream`); `kind` is the exhausted limit. */
  budgetRefusal?: { at: 'before' | 'stream'; kind: string; name: string }
  traceparent?: string
}

export interface LifecycleEvent {
  event: 'starting' | 'ready' | 'draining' | 'stopped'
  detail?: string
}

const identity = channel(CHANNELS.identity)
const tlsHandshake = channel(CHANNELS.tlsHandshake)
const tlsRejected = channel(CHANNELS.tlsRejected)
const request = channel(CHANNELS.request)
const connection = channel(CHANNELS.connection)
const refused = channel(CHANNELS.refused)
const lifecycle = channel(CHANNELS.lifecycle)
const upstreamFailed = channel(CHANNELS.upstreamFailed)
const policyDecision = channel(CHANNELS.policyDecision)
const llmUsage = channel(CHANNELS.llmUsage)

export function publishIdentity(e: IdentityEvent): void {
  if (identity.hasSubscribers) identity.publish(e)
}
export function publishTlsHandshake(e: TlsHandshakeEvent): void {
  if (tlsHandshake.hasSubscribers) tlsHandshake.publish(e)
}
export function publishTlsRejected(e: TlsRejectedEvent): void {
  if (tlsRejected.hasSubscribers) tlsRejected.publish(e)
}
export function publishRequest(e: RequestEvent): void {
  if (request.hasSubscribers) request.publish(e)
}
export function publishRefused(e: RefusedEvent): void {
  if (refused.hasSubscribers) refused.publish(e)
}
export function publishConnection(e: ConnectionEvent): void {
  if (connection.hasSubscribers) connection.publish(e)
}
export function publishLifecycle(e: LifecycleEvent): void {
  if (lifecycle.hasSubscribers) lifecycle.publish(e)
}
export function publishUpstreamFailed(e: UpstreamFailedEvent): void {
  if (upstreamFailed.hasSubscribers) upstreamFailed.publish(e)
}
export function publishPolicyDecision(e: PolicyDecisionEvent): void {
  if (policyDecision.hasSubscribers) policyDecision.publish(e)
}
export function publishLlmUsage(e: LlmUsageEvent): void {
  if (llmUsage.hasSubscribers) llmUsage.publish(e)
}

/**
 * Whether anyone listens, for callers whose event costs something to build (per request, per decision, per
 * handshake): they ask first and build nothing when nobody listens (the sidecar subscribes only for the
 * observers its config turns on).
 */
export function wantsRequest(): boolean {
  return request.hasSubscribers
}
export function wantsPolicyDecision(): boolean {
  return policyDecision.hasSubscribers
}
export function wantsTlsHandshake(): boolean {
  return tlsHandshake.hasSubscribers
}

/** Subscribes to one channel with a typed handler; returns the unsubscribe function. */
export function on<K extends keyof EventMap>(name: K, handler: (e: EventMap[K]) => void): () => void {
  const ch = channel(CHANNELS[name])
  const fn = (message: unknown) => handler(message as EventMap[K])
  ch.subscribe(fn)
  return () => ch.unsubscribe(fn)
}

export interface EventMap {
  identity: IdentityEvent
  tlsHandshake: TlsHandshakeEvent
  tlsRejected: TlsRejectedEvent
  request: RequestEvent
  refused: RefusedEvent
  connection: ConnectionEvent
  lifecycle: LifecycleEvent
  upstreamFailed: UpstreamFailedEvent
  policyDecision: PolicyDecisionEvent
  llmUsage: LlmUsageEvent
}
