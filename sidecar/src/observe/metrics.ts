/**
 * Prometheus metrics, fed by the data plane's events. Labels are bounded:
 * listener and upstream names from the config, directions, status classes
 * and error codes; never a SPIFFE ID, a path or anything a client chooses.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { ERROR_TABLE } from '../errors/codes.ts'
import { DeferredBatch } from '../forwarder/after-dispatch.ts'
import { onPolicyReload } from '../policy/events.ts'
import { registerDefaultMetrics } from './default-metrics.ts'
import { on, type PolicyDecisionEvent } from './events.ts'

/** `2xx` and friends; anything outside 100–599 is not a status a client was sent. */
function statusClass(status: number): string | undefined {
  return Number.isInteger(status) && status >= 100 && status <= 599
    ? `${Math.floor(status / 100)}xx`
    : undefined
}

/** Only codes of the error table become label values: anything else would be unbounded or meaningless. */
function codeLabel(code: string | undefined): string {
  return code !== undefined && Object.hasOwn(ERROR_TABLE, code) ? code : ''
}

const ACTIONS = new Set(['http.route', 'llm.model', 'mcp.tool', 'mcp.resource', 'mcp.prompt', 'mcp.client'])
const ENGINE_NAME = /^[a-z][a-z0-9_-]{0,31}$/
const RULE_LABEL_MAX = 128
const LIMIT_LABELS = new Set([
  'tokensPerMinute',
  'tokensPerDay',
  'requestsPerMinute',
  'tokens',
  'unavailable',
])

/** A closed set each: anything else is counted as `other`, never copied into a label. */
function decisionLabels(e: PolicyDecisionEvent): Record<string, string> {
  return {
    action: ACTIONS.has(e.action) ? e.action : 'other',
    // Audit mode lets a denial through as allow; counting it as allow would hide what enforcing would do.
    decision: e.wouldDeny === true ? 'would_deny' : e.decision === 'allow' ? 'allow' : 'deny',
    engine: ENGINE_NAME.test(e.engine) ? e.engine : 'other',
    mode: e.mode === 'audit' ? 'audit' : 'enforce',
  }
}

export interface Metrics {
  registry: Registry
  /** Starts listening to events; returns the function that stops it. */
  subscribe(): () => void
  /** Audit lines that were never written (the audit log reports them here). */
  auditLinesLost(lines: number): void
}

export interface MetricsOptions {
  /** Add the deciding rule's id as a `rule` label on decisions (bounded by the policy file; off by default). */
  policyRuleLabel?: boolean
  /** Read at each scrape: can the Workload API be reached (svidecar_workload_api_reachable)? */
  workloadApiReachable?: () => boolean
  /**
   * Read at each scrape: what /readyz reports (a valid SVID, the listeners bound, not draining). Without it,
   * svidecar_ready follows the identity events alone.
   */
  ready?: () => boolean
}

/**
 * What belongs to one sidecar when several share a process and so share the
 * event channels (`svidecar demo` runs two): its identity events by owner,
 * its listeners' and upstreams' events by name and direction.
 */
export interface MetricsScope {
  owner: string
  /** Inbound listener names. */
  inbound: ReadonlySet<string>
  /** Outbound listener names and upstream names (outbound TLS events carry the upstream's). */
  outbound: ReadonlySet<string>
  /** The sidecar's policy store: its reloads are counted, with the counts it has kept since it opened. */
  policy?: { readonly path: string; readonly counts: { success: number; failure: number } }
}

export function createMetrics(scope?: MetricsScope, options: MetricsOptions = {}): Metrics {
  const mine = (e: { listener: string; direction: 'inbound' | 'outbound' }) =>
    scope === undefined || scope[e.direction].has(e.listener)
  const registry = new Registry()
  registerDefaultMetrics(registry)
  // prom-client's sums of the per-type gauges end in `_total`, which Prometheus reserves for counters
  // (`promtool check metrics` flags them); sum(nodejs_active_handles) and friends give the same number.
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ])
    registry.removeSingleMetric(name)
  const readyNow = options.ready
  const ready = new Gauge({
    name: 'svidecar_ready',
    help: '1 when the sidecar takes traffic: a valid X.509-SVID held, its listeners bound, not draining',
    registers: [registry],
    ...(readyNow === undefined
      ? {}
      : {
          collect() {
            this.set(readyNow() ? 1 : 0)
          },
        }),
  })
  const expiry = new Gauge({
    name: 'svidecar_svid_expiry_timestamp_seconds',
    help: 'NotAfter of the current X.509-SVID, in Unix seconds',
    registers: [registry],
  })
  const reachable = options.workloadApiReachable
  if (reachable !== undefined) {
    new Gauge({
      name: 'svidecar_workload_api_reachable',
      help: '0 while the Workload API watch fails to reach the agent (the SVID held may still be valid), 1 otherwise',
      registers: [registry],
      collect() {
        this.set(reachable() ? 1 : 0)
      },
    })
  }
  const rotations = new Counter({
    name: 'svidecar_svid_rotations_total',
    help: 'X.509-SVID or bundle updates applied',
    registers: [registry],
  })
  const handshakes = new Counter({
    name: 'svidecar_tls_handshakes_total',
    help: 'mTLS handshakes that passed SPIFFE verification',
    labelNames: ['listener', 'direction', 'resumed'],
    registers: [registry],
  })
  const rejections = new Counter({
    name: 'svidecar_tls_rejections_total',
    help: 'TLS handshakes refused, by error code and reason (a closed set, see README)',
    labelNames: ['listener', 'direction', 'code', 'reason'],
    registers: [registry],
  })
  const requests = new Counter({
    name: 'svidecar_requests_total',
    help: 'Requests handled, by status class and the sidecar error code (empty when the upstream answered)',
    labelNames: ['listener', 'direction', 'status_class', 'code'],
    registers: [registry],
  })
  const aborted = new Counter({
    name: 'svidecar_requests_aborted_total',
    help: 'Requests whose client went away before the exchange finished',
    labelNames: ['listener', 'direction'],
    registers: [registry],
  })
  const refused = new Counter({
    name: 'svidecar_connections_refused_total',
    help: 'Connections refused or cut before a request reached the proxy (parse errors, head timeouts, connection limit, CONNECT, idle keep-alive), by error code',
    labelNames: ['listener', 'direction', 'code'],
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'svidecar_request_duration_seconds',
    help: 'Time from request to end of response, streams included',
    labelNames: ['listener', 'direction'],
    // Sub-millisecond proxy overhead up to long-lived streams.
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  })
  const connections = new Gauge({
    name: 'svidecar_connections_active',
    help: 'Open client connections per listener',
    labelNames: ['listener', 'direction'],
    registers: [registry],
  })
  const ruleLabel = options.policyRuleLabel === true
  const decisions = new Counter({
    name: 'svidecar_policy_decisions_total',
    help: 'Policy decisions, by action (resource kind), decision (allow, deny, would_deny in audit mode), engine and mode',
    labelNames: ['action', 'decision', 'engine', 'mode', ...(ruleLabel ? ['rule'] : [])],
    registers: [registry],
    // A scrape counts the decisions still waiting for their turn (below).
    collect: () => decided.flush(),
  })
  const decisionDuration = new Histogram({
    name: 'svidecar_policy_decision_duration_seconds',
    help: 'Time the policy engine took to decide',
    labelNames: ['engine'],
    // In-process engines decide in microseconds; a decision service over HTTP in milliseconds.
    buckets: [
      0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
    ],
    registers: [registry],
    collect: () => decided.flush(),
  })
  // Apart from the decisions, so their series and what reads them stay as they were.
  const policyErrors = new Counter({
    name: 'svidecar_policy_errors_total',
    help: 'Policy decisions the engine could not make (kind=engine: it failed, the request was denied) or made without a condition that failed to evaluate (kind=condition), by action and engine',
    labelNames: ['action', 'engine', 'kind'],
    registers: [registry],
    collect: () => decided.flush(),
  })
  const reloads = new Counter({
    name: 'svidecar_policy_reloads_total',
    help: 'Policy file loads and reloads, by result (success, failure: the last good policy stays in force)',
    labelNames: ['result'],
    registers: [registry],
  })
  const auditErrors = new Counter({
    name: 'svidecar_audit_write_errors_total',
    help: 'Audit lines that could not be written (disk or stream error, full queue)',
    registers: [registry],
  })
  // LLM calls (stages/usage.ts): model labels are the config's model names or `other`, never what a client sent.
  const llmTokens = new Counter({
    name: 'svidecar_llm_tokens_total',
    help: 'LLM tokens used, by model (configured names, else other), kind (input, output) and source (exact from the provider, estimated by the sidecar)',
    labelNames: ['model', 'kind', 'source'],
    registers: [registry],
  })
  const llmRefusals = new Counter({
    name: 'svidecar_llm_budget_refusals_total',
    help: 'LLM calls a budget refused before forwarding (at=before) or whose stream it ended (at=stream), by the limit that ran out',
    labelNames: ['at', 'limit'],
    registers: [registry],
  })
  const llmTtft = new Histogram({
    name: 'svidecar_llm_time_to_first_token_seconds',
    help: 'Time from the request to the first output token of a streamed LLM call, by model (configured names, else other)',
    labelNames: ['model'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32],
    registers: [registry],
  })
  for (const at of ['before', 'stream']) llmRefusals.inc({ at, limit: 'tokensPerMinute' }, 0)
  for (const result of ['success', 'failure']) reloads.inc({ result }, 0)
  auditErrors.inc(0)
  ready.set(0)
  // The first load happened before metrics existed.
  if (scope?.policy !== undefined) {
    reloads.inc({ result: 'success' }, scope.policy.counts.success)
    reloads.inc({ result: 'failure' }, scope.policy.counts.failure)
  }

  // Decisions are published on the request path; they are counted after the request has gone out, or at a scrape.
  const decided = new DeferredBatch<PolicyDecisionEvent>((batch) => {
    for (const e of batch) {
      const labels = decisionLabels(e)
      decisions.inc(ruleLabel ? { ...labels, rule: (e.ruleId ?? '').slice(0, RULE_LABEL_MAX) } : labels)
      if (Number.isFinite(e.latencyMs) && e.latencyMs >= 0)
        decisionDuration.observe({ engine: labels.engine as string }, e.latencyMs / 1000)
      if (e.error !== undefined)
        policyErrors.inc({
          action: labels.action as string,
          engine: labels.engine as string,
          kind: e.error === 'engine' ? 'engine' : 'condition',
        })
    }
  })

  return {
    registry,
    subscribe() {
      const off = [
        on('identity', (e) => {
          if (scope !== undefined && e.owner !== scope.owner) return
          ready.set(e.status === 'ready' ? 1 : 0)
          if (e.status === 'ready') {
            rotations.inc()
            if (e.notAfter) expiry.set(e.notAfter.getTime() / 1000)
          }
        }),
        on('tlsHandshake', (e) => {
          if (mine(e))
            handshakes.inc({ listener: e.listener, direction: e.direction, resumed: String(e.resumed) })
        }),
        on('tlsRejected', (e) => {
          if (mine(e))
            rejections.inc({ listener: e.listener, direction: e.direction, code: e.code, reason: e.reason })
        }),
        on('request', (e) => {
          if (!mine(e)) return
          const labels = { listener: e.listener, direction: e.direction }
          const cls = statusClass(e.status)
          if (e.aborted || cls === undefined) aborted.inc(labels)
          else requests.inc({ ...labels, status_class: cls, code: codeLabel(e.code) })
          duration.observe(labels, e.durationMs / 1000)
        }),
        on('refused', (e) => {
          if (mine(e)) refused.inc({ listener: e.listener, direction: e.direction, code: codeLabel(e.code) })
        }),
        on('policyDecision', (e) => {
          if (!mine(e)) return
          decided.push(e)
        }),
        on('llmUsage', (e) => {
          if (!mine(e)) return
          const model = e.modelLabel
          const source = e.estimated ? 'estimated' : 'exact'
          if (e.inputTokens > 0) llmTokens.inc({ model, kind: 'input', source }, e.inputTokens)
          if (e.outputTokens > 0) llmTokens.inc({ model, kind: 'output', source }, e.outputTokens)
          if (e.timeToFirstTokenMs !== undefined && e.timeToFirstTokenMs >= 0)
            llmTtft.observe({ model }, e.timeToFirstTokenMs / 1000)
          const r = e.budgetRefusal
          if (r !== undefined)
            llmRefusals.inc({ at: r.at, limit: LIMIT_LABELS.has(r.kind) ? r.kind : 'other' })
        }),
        on('connection', (e) => {
          if (!mine(e)) return
          if (e.event === 'open') connections.inc({ listener: e.listener, direction: e.direction })
          else connections.dec({ listener: e.listener, direction: e.direction })
        }),
        onPolicyReload((e) => {
          // Only this sidecar's policy file: another sidecar in the process has its own.
          if (scope === undefined || e.source === scope.policy?.path)
            reloads.inc({ result: e.result === 'success' ? 'success' : 'failure' })
        }),
      ]
      return () => {
        for (const f of off) f()
      }
    },
    auditLinesLost(lines) {
      if (lines > 0) auditErrors.inc(lines)
    },
  }
}
