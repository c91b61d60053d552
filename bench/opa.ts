/**
 * OPA decision latency for bench/micro.ts: the built-in benchmark's 10,000
 * rules written as Rego (one rule per line, so OPA's rule index keys on the
 * subject like the built-in index does), served by a real OPA server
 * (test/harness), asked through the OPA engine over HTTP on loopback. A
 * cache miss is a full round trip; a hit is the engine's LRU alone.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createOpaEngine, type PolicyDecision, type PolicyRequest } from 'svidecar'
import { launchOpa } from '../test/harness/opa.ts'
import { ensureOpa } from '../test/harness/opa-install.ts'

/** The Rego of bench/micro.ts's bigPolicy(conditions), rule for rule. */
function bigRego(conditions: boolean): string {
  const lines = ['package svidecar.bench', '', 'import data.svidecar.lib', '']
  for (let i = 0; i < 10_000; i++) {
    const kind = i % 3
    const resource =
      kind === 0
        ? `lib.route(["GET", "POST"], "/svc-${i}/**")`
        : kind === 1
          ? `lib.named("mcp.tool", "tool-${i}-*")`
          : `lib.named("llm.model", "model-${i}")`
    const when = conditions && i % 10 === 0 ? `; input.context.headers["x-env"] == "prod"` : ''
    lines.push(
      `allows contains "r${i}" if { input.subject.id == "spiffe://example.org/ns/n${i % 100}/sa/s${i}"; ${resource}${when} }`,
    )
  }
  lines.push(
    'denies contains "deny-debug" if { input.subject.trustDomain == "example.org"; lib.route(["*"], "/**/debug") }',
    'denies contains "deny-admin-tools" if { lib.id_matches("spiffe://example.org/ns/*/sa/**", input.subject); lib.named("mcp.tool", "admin_*") }',
    '',
    // Each subject has one allow rule here, so "the first allow in file order" is the only one.
    'decision := {"allow": false, "rule_id": "deny-debug"} if "deny-debug" in denies',
    'else := {"allow": false, "rule_id": "deny-admin-tools"} if "deny-admin-tools" in denies',
    'else := {"allow": true, "rule_id": id} if { some id in allows }',
    'else := {"allow": false}',
    '',
    'allow := decision.allow',
    '',
    'rule_id := decision.rule_id',
  )
  return `${lines.join('\n')}\n`
}

export interface AsyncLatency {
  name: string
  p50: number
  p99: number
  p999: number
}

async function latencyAsync(
  name: string,
  fn: (i: number) => PolicyDecision | Promise<PolicyDecision>,
  samples: number,
): Promise<AsyncLatency> {
  for (let i = 0; i < 2000; i++) await fn(i)
  const ns = new Float64Array(samples)
  for (let s = 0; s < samples; s++) {
    const t0 = performance.now()
    await fn(s)
    ns[s] = (performance.now() - t0) * 1e6
  }
  ns.sort()
  const at = (q: number) => (ns[Math.min(samples - 1, Math.floor(q * samples))] as number) / 1000
  return { name, p50: at(0.5), p99: at(0.99), p999: at(0.999) }
}

export interface OpaBench {
  /** How many of the requests OPA decides like the built-in engine (decision and rule). */
  agreement: string
  miss: AsyncLatency
  /** A decision answered from the cache, for the synchronous latency() of micro.ts. */
  hit: (i: number) => unknown
  stop: () => Promise<void>
}

export async function opaBench(
  requests: readonly PolicyRequest[],
  builtin: (r: PolicyRequest) => PolicyDecision,
): Promise<OpaBench> {
  await ensureOpa()
  const dir = mkdtempSync(join(tmpdir(), 'svidecar-opa-bench-'))
  const lib = readFileSync(
    new URL('../deploy/examples/policies/opa/svidecar_lib.rego', import.meta.url),
    'utf8',
  )
  const opa = await launchOpa(dir, { 'lib.rego': lib, 'bench.rego': bigRego(true) }, { decisionLogs: false })
  // The deadline is generous: a benchmark measures the tail rather than cutting it off.
  const uncached = createOpaEngine({
    url: opa.url,
    package: 'svidecar.bench',
    timeoutMs: 5000,
    cache: { ttlMs: 0 },
  })
  const cached = createOpaEngine({
    url: opa.url,
    package: 'svidecar.bench',
    timeoutMs: 5000,
    cache: { ttlMs: 3_600_000 },
  })
  let same = 0
  for (const r of requests) {
    const d = await uncached.decide(r)
    const b = builtin(r)
    if (d.decision === b.decision && d.ruleId === b.ruleId) same++
    await cached.decide(r)
  }
  const n = requests.length
  const miss = await latencyAsync(
    'policy decision, OPA engine, the same 10,000 rules in Rego, cache miss (HTTP to opa on loopback)',
    (i) => uncached.decide(requests[i % n] as PolicyRequest),
    20_000,
  )
  return {
    agreement: `${same}/${n}`,
    miss,
    hit: (i) => cached.decide(requests[i % n] as PolicyRequest),
    stop: async () => {
      await uncached.close()
      await cached.close()
      await opa.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
