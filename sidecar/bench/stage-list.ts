/**
 * The inbound stage list and the synthetic requests both pipeline benchmarks run (pipeline.ts: time,
 * alloc.ts: garbage), so the two always measure the same path.
 */
import { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { SpiffeId } from 'workload-api-client'
import { Upstream } from '../src/forwarder/upstreams.ts'
import type { Identity } from '../src/identity/identity.ts'
import { Exchange } from '../src/pipeline/exchange.ts'
import type { Stage } from '../src/pipeline/stage.ts'
import type { PolicyEngine } from '../src/policy/engine.ts'
import { parsePolicy } from '../src/policy/file.ts'
import { drainStage } from '../src/stages/drain.ts'
import { guardStage } from '../src/stages/guards.ts'
import { peerIdentityStage } from '../src/stages/identity.ts'
import { policyStage } from '../src/stages/policy.ts'
import { fixedRouteStage } from '../src/stages/route.ts'
import { targetStage } from '../src/stages/target.ts'
import { traceStage } from '../src/stages/trace.ts'
import { upgradeStage } from '../src/stages/upgrade.ts'

export const RULES = 10_000

/** The shape of bench/micro.ts's policy: one allow rule per workload, every tenth with a CEL condition. */
function bigPolicy(): string {
  const rules: string[] = []
  for (let i = 0; i < RULES; i++) {
    const when = i % 10 === 0 ? `, when: 'request.headers["x-env"] == "prod"'` : ''
    rules.push(
      `  - { id: r${i}, effect: allow, subjects: ["spiffe://example.org/ns/n${i % 100}/sa/s${i}"], resources: [{ kind: http.route, methods: [GET, POST], path: "/svc-${i}/**" }]${when} }`,
    )
  }
  rules.push(
    `  - { id: deny-debug, effect: deny, subjects: [{ trustDomain: example.org }], resources: [{ kind: http.route, path: "/**/debug" }] }`,
  )
  return `version: 1\nrules:\n${rules.join('\n')}\n`
}

const builtin = parsePolicy(bigPolicy(), 'bench.yaml').engine
// As openPolicy wraps it for `policy.headers: [x-env]`, so conditions see the header.
const engine: PolicyEngine = {
  name: builtin.name,
  headers: ['x-env'],
  decide: (request) => builtin.decide(request),
}
// The identity stage reads `ready` only; a real Identity needs a Workload API, and its getter is one call.
const identity = { ready: true, current: () => undefined, notReadyReason: () => '' } as unknown as Identity
export const app = new Upstream(
  { name: 'app', url: new URL('http://127.0.0.1:8080'), kind: 'plaintext' },
  { connectTimeoutMs: 5000, idleTimeoutMs: 60_000, requestTimeoutMs: 0, minVersion: 'TLSv1.2' },
)
const listener = { name: 'public', draining: false }
export const stages: Stage[] = [
  drainStage(listener),
  guardStage({ maxHeaderCount: 100, maxBodyBytes: 0, inbound: true }),
  targetStage(),
  fixedRouteStage(app),
  peerIdentityStage(identity, 'x-spiffe-id'),
  upgradeStage(),
  traceStage(),
  policyStage(engine),
]

export interface Sample {
  req: IncomingMessage
  peer: SpiffeId
}

/** A request as Node's parser leaves it: method, url, headers and rawHeaders. */
function request(method: string, url: string, headers: [string, string][]): IncomingMessage {
  const req = new IncomingMessage(new Socket())
  req.method = method
  req.url = url
  req.httpVersionMajor = 1
  req.httpVersionMinor = 1
  req.httpVersion = '1.1'
  for (const [k, v] of headers) {
    req.rawHeaders.push(k, v)
    req.headers[k.toLowerCase()] = v
  }
  req.complete = true
  return req
}

export const samples: Sample[] = []
for (let i = 0; i < 1000; i++) {
  const n = (i * 7919) % RULES
  const path = i % 7 === 0 ? `/svc-${n}/a/debug` : i % 13 === 0 ? '/unlisted' : `/svc-${n}/items/42?page=2`
  samples.push({
    peer: SpiffeId.parse(`spiffe://example.org/ns/n${n % 100}/sa/s${n}`),
    req: request(i % 3 === 0 ? 'POST' : 'GET', path, [
      ['Host', 'mcp.internal:15443'],
      ['User-Agent', 'bench/1.0'],
      ['Accept', 'application/json'],
      ['X-Env', 'prod'],
      ...(i % 3 === 0 ? ([['Content-Length', '0']] as [string, string][]) : []),
    ]),
  })
}

/**
 * One request through the stages, as build.ts runs them; the refusal (or the exchange) it ends with. With
 * `end`, the exchange is also ended as the forwarder ends it (200, or the refusal's status and code), which
 * builds the request event when someone subscribes.
 */
export function runStages(s: Sample, upTo = stages.length, end = false): unknown {
  const ex = new Exchange({
    direction: 'inbound',
    listener: 'public',
    req: s.req,
    upgrade: false,
    peer: s.peer,
  })
  for (let k = 0; k < upTo; k++) {
    const stage = stages[k] as Stage
    const r = stage.onRequest(ex)
    if (r instanceof Promise)
      throw new Error(`stage ${stage.name} went async; the bench measures the sync path`)
    if (r !== undefined) {
      if (end) ex.end(r.status, r.code, r)
      return r
    }
  }
  if (end) ex.end(200, undefined)
  return ex
}
