// Each pipeline stage on its own, with real IncomingMessage objects: what it refuses, with which code, and what
// it writes into the exchange for the stages after it.
import type { IncomingMessage } from 'node:http'
import { IncomingMessage as Message } from 'node:http'
import { Socket } from 'node:net'
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import type { Upstream, Upstreams } from '../src/forwarder/upstreams.ts'
import type { Identity } from '../src/identity/identity.ts'
import { on, type PolicyDecisionEvent } from '../src/observe/events.ts'
import { Exchange } from '../src/pipeline/exchange.ts'
import type { Stage, StageResult } from '../src/pipeline/stage.ts'
import type { PolicyDecision, PolicyEngine } from '../src/policy/engine.ts'
import { parsePolicy } from '../src/policy/file.ts'
import { drainStage } from '../src/stages/drain.ts'
import { guardStage } from '../src/stages/guards.ts'
import { ownIdentityStage, peerIdentityStage } from '../src/stages/identity.ts'
import { policyStage } from '../src/stages/policy.ts'
import { fixedRouteStage, routeTableStage } from '../src/stages/route.ts'
import { targetStage } from '../src/stages/target.ts'
import { newTraceparent, traceStage, validTraceparent } from '../src/stages/trace.ts'
import { upgradeStage } from '../src/stages/upgrade.ts'

const AGENT = SpiffeId.parse('spiffe://example.org/agent')
const SELF = SpiffeId.parse('spiffe://example.org/self')

function request(method: string, url: string, headers: Record<string, string> = { host: 'app.local' }) {
  const req = new Message(new Socket())
  req.method = method
  req.url = url
  req.httpVersion = '1.1'
  for (const [name, value] of Object.entries(headers)) {
    req.headers[name.toLowerCase()] = value
    req.rawHeaders.push(name, value)
  }
  return req
}

function exchange(
  req: IncomingMessage,
  options: { direction?: 'inbound' | 'outbound'; upgrade?: boolean; peer?: SpiffeId } = {},
) {
  return new Exchange({
    direction: options.direction ?? 'outbound',
    listener: 'l',
    req,
    upgrade: options.upgrade ?? false,
    ...(options.peer === undefined ? {} : { peer: options.peer }),
  })
}

async function result(stage: Stage, ex: Exchange): Promise<StageResult> {
  return await stage.onRequest(ex)
}

t.test('drain: refuses while the listener drains, with the listener named', async (t) => {
  const listener = { name: 'egress', draining: false }
  const stage = drainStage(listener)
  t.equal(await result(stage, exchange(request('GET', '/'))), undefined)
  listener.draining = true
  t.match(await result(stage, exchange(request('GET', '/'))), {
    code: 'SVD_SHUTTING_DOWN',
    status: 503,
    message: /egress/,
  })
})

t.test('guards: the head checks of listener/http-guards.ts, stricter inbound', async (t) => {
  const outbound = guardStage({ maxHeaderCount: 10, maxBodyBytes: 100, inbound: false })
  const inbound = guardStage({ maxHeaderCount: 10, maxBodyBytes: 100, inbound: true })
  t.equal(await result(outbound, exchange(request('GET', '/'))), undefined)
  t.match(await result(outbound, exchange(request('GET', '/', {}))), { reason: 'MISSING_HOST' })
  const underscore = () => request('GET', '/', { host: 'a', X_Spiffe_Id: 'x' })
  t.equal(await result(outbound, exchange(underscore())), undefined)
  t.match(await result(inbound, exchange(underscore())), { reason: 'UNDERSCORE_IN_HEADER_NAME' })
  t.match(await result(outbound, exchange(request('POST', '/', { host: 'a', 'content-length': '101' }))), {
    code: 'SVD_REQUEST_BODY_TOO_LARGE',
  })
})

t.test('target: rewrites to origin-form with dot-segments resolved, or refuses', async (t) => {
  const req = request('GET', 'http://app.local/a/./b/../c?x=1', { host: 'app.local' })
  const ex = exchange(req)
  t.equal(await result(targetStage(), ex), undefined)
  t.equal(req.url, '/a/c?x=1')
  t.equal(ex.path, '/a/c', 'the exchange path has no query')
  t.match(await result(targetStage(), exchange(request('GET', '/../etc'))), { reason: 'PATH_ESCAPES_ROOT' })
})

t.test('upgrade: only WebSocket, and only on upgrades', async (t) => {
  const ws = request('GET', '/', { host: 'a', upgrade: 'websocket' })
  t.equal(await result(upgradeStage(), exchange(ws, { upgrade: true })), undefined)
  const h2c = request('GET', '/', { host: 'a', upgrade: 'h2c' })
  t.match(await result(upgradeStage(), exchange(h2c, { upgrade: true })), { reason: 'UPGRADE_NOT_SUPPORTED' })
  t.equal(await result(upgradeStage(), exchange(h2c)), undefined, 'a plain request is not an upgrade')
})

t.test(
  'route: inbound always the app; outbound the table, with the Host rewritten for HTTPS APIs',
  async (t) => {
    const app = { name: 'app', kind: 'plaintext' } as Upstream
    const ex = exchange(request('GET', '/x'), { direction: 'inbound' })
    t.equal(await result(fixedRouteStage(app), ex), undefined)
    t.equal(ex.upstream, app)
    t.equal(ex.route, undefined, 'inbound requests have no route name')

    const api = { name: 'api', kind: 'https', url: new URL('https://api.example.com') } as Upstream
    const peer = { name: 'peer', kind: 'spiffe', url: new URL('https://127.0.0.1:1') } as Upstream
    const byName = new Map([
      ['api', api],
      ['peer', peer],
    ])
    const upstreams = { get: (name: string) => byName.get(name) } as unknown as Upstreams
    const stage = routeTableStage(
      [
        { host: 'llm.local', upstream: 'api' },
        { pathPrefix: '/mcp', upstream: 'peer' },
        { pathPrefix: '/gone', upstream: 'missing' },
      ],
      upstreams,
    )
    const toApi = exchange(request('POST', '/v1/chat', { host: 'LLM.local:8080' }))
    t.equal(await result(stage, toApi), undefined)
    t.equal(toApi.upstream, api)
    t.equal(toApi.route, 'api')
    t.equal(toApi.headers.set.host, 'api.example.com')
    t.ok(toApi.headers.strip.has('host'))
    const toPeer = exchange(request('GET', '/mcp/x'))
    t.equal(await result(stage, toPeer), undefined)
    t.equal(toPeer.upstream, peer)
    t.equal(toPeer.headers.set.host, undefined, 'a peer sidecar gets the name the client used')
    t.match(await result(stage, exchange(request('GET', '/mcpx?token=s3cret'))), {
      code: 'SVD_ROUTE_NOT_FOUND',
      message: 'no route for GET app.local/mcpx',
    })
    t.match(await result(stage, exchange(request('GET', '/gone'))), { code: 'SVD_ROUTE_NOT_FOUND' })
  },
)

t.test('identity: inbound the verified peer, outbound this workload; refused without an SVID', async (t) => {
  let ready = true
  const identity = {
    get ready() {
      return ready
    },
    current: () => (ready ? { svid: { id: SELF } } : undefined),
    notReadyReason: () => 'no SVID yet',
  } as unknown as Identity
  const inbound = exchange(request('GET', '/'), { direction: 'inbound', peer: AGENT })
  t.equal(await result(peerIdentityStage(identity, 'x-spiffe-id'), inbound), undefined)
  t.equal(inbound.subject, AGENT)
  t.equal(inbound.headers.set['x-spiffe-id'], AGENT.toString())
  t.match(await result(peerIdentityStage(identity, 'x-spiffe-id'), exchange(request('GET', '/'))), {
    code: 'SVD_PEER_REJECTED',
  })
  const outbound = exchange(request('GET', '/'))
  t.equal(await result(ownIdentityStage(identity), outbound), undefined)
  t.equal(outbound.subject, SELF)
  ready = false
  t.match(await result(ownIdentityStage(identity), exchange(request('GET', '/'))), {
    code: 'SVD_IDENTITY_UNAVAILABLE',
    message: /no SVID yet/,
  })
  const late = exchange(request('GET', '/'), { direction: 'inbound', peer: AGENT })
  t.match(await result(peerIdentityStage(identity, 'x-spiffe-id'), late), {
    code: 'SVD_IDENTITY_UNAVAILABLE',
  })
  t.equal(late.headers.set['x-spiffe-id'], undefined)
})

t.test('trace: a valid traceparent is kept, anything else is replaced and forwarded', async (t) => {
  const valid = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const kept = exchange(request('GET', '/', { host: 'a', traceparent: valid }))
  await result(traceStage(), kept)
  t.equal(kept.traceparent, valid)
  t.same(kept.headers.set, {}, 'nothing to add')
  for (const bad of [
    undefined,
    'garbage',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
    `${valid}-extra`,
  ]) {
    const ex = exchange(
      request('GET', '/', bad === undefined ? { host: 'a' } : { host: 'a', traceparent: bad }),
    )
    await result(traceStage(), ex)
    t.match(ex.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, String(bad))
    t.not(ex.traceparent, bad)
    t.equal(ex.headers.set.traceparent, ex.traceparent, 'the upstream gets the same one')
  }
  t.ok(
    validTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future'),
    'later versions may add fields',
  )
  t.not(newTraceparent(), newTraceparent())
})

t.test(
  'policy: decides http.route on the normalised path, publishes one event, never names the rule',
  async (t) => {
    const { engine } = parsePolicy(
      `version: 1
rules:
  - id: read
    effect: allow
    subjects: [spiffe://example.org/agent]
    resources: [{ kind: http.route, methods: [GET], path: /docs/** }]
  - id: secret-rule-name
    effect: deny
    subjects: [spiffe://example.org/agent]
    resources: [{ kind: http.route, path: /docs/private/** }]
  - id: try-out
    effect: deny
    mode: audit
    subjects: [spiffe://example.org/agent]
    resources: [{ kind: http.route, path: /docs/trial }]
`,
      'policy.yaml',
    )
    const events: PolicyDecisionEvent[] = []
    t.teardown(on('policyDecision', (e) => events.push(e)))
    const decide = async (method: string, url: string, stage = policyStage(engine)) => {
      const ex = exchange(request(method, url), { direction: 'inbound', peer: AGENT })
      ex.traceparent = newTraceparent()
      return { refusal: await result(stage, ex), event: events.at(-1), ex }
    }
    const allowed = await decide('GET', '/docs/a?token=x')
    t.equal(allowed.refusal, undefined)
    t.match(allowed.event, {
      listener: 'l',
      direction: 'inbound',
      subject: AGENT.toString(),
      action: 'http.route',
      resource: 'GET /docs/a',
      decision: 'allow',
      ruleId: 'read',
      mode: 'enforce',
      engine: 'builtin',
      wouldDeny: false,
      traceparent: allowed.ex.traceparent,
    })
    const denied = await decide('GET', '/docs/private/x')
    t.match(denied.refusal, { code: 'SVD_POLICY_DENIED', status: 403 })
    t.notMatch(denied.refusal?.message, /secret-rule-name/)
    t.match(denied.event, { decision: 'deny', ruleId: 'secret-rule-name' })
    t.match((await decide('POST', '/docs/a')).refusal, { code: 'SVD_POLICY_DENIED' }, 'default deny')
    const audited = await decide('GET', '/docs/trial')
    t.equal(audited.refusal, undefined)
    t.match(audited.event, { decision: 'allow', wouldDeny: true, mode: 'audit', ruleId: 'try-out' })

    // An engine that answers with a promise is awaited; one that fails denies.
    const remote: PolicyEngine = {
      name: 'remote',
      decide: async (r) => engine.decide(r),
    }
    t.equal((await decide('GET', '/docs/a', policyStage(remote))).refusal, undefined)
    t.match((await decide('GET', '/docs/private/x', policyStage(remote))).refusal, {
      code: 'SVD_POLICY_DENIED',
    })
    const broken: PolicyEngine = {
      name: 'broken',
      decide: (): PolicyDecision => {
        throw new Error('decision service down')
      },
    }
    const failed = await decide('GET', '/docs/a', policyStage(broken))
    t.match(failed.refusal, { code: 'SVD_POLICY_DENIED' })
    t.match(failed.event, { decision: 'deny', engine: 'broken', reason: /decision service down/ })
    const rejecting: PolicyEngine = { name: 'rejecting', decide: () => Promise.reject(new Error('timeout')) }
    t.match((await decide('GET', '/docs/a', policyStage(rejecting))).refusal, { code: 'SVD_POLICY_DENIED' })
  },
)
