// The policy stage over real mTLS with the dev Workload API: what it lets through, what it refuses and how,
// audit mode, WebSocket upgrades, and a policy file replaced (well and badly) while the sidecars run.
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { on, type PolicyDecisionEvent } from '../src/observe/events.ts'
import { exactIdOf } from '../src/tls/authorizer.ts'
import { AGENT, MCP, startMesh } from './helpers/mesh.ts'

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/

function decisions(t: Test): PolicyDecisionEvent[] {
  const seen: PolicyDecisionEvent[] = []
  t.teardown(on('policyDecision', (e) => seen.push(e)))
  return seen
}

function policyFile(t: Test, text: string): string {
  const file = join(t.testdir(), 'policy.yaml')
  writeFileSync(file, text)
  return file
}

const SERVER_POLICY = `version: 1
rules:
  - id: agent-echo
    effect: allow
    subjects: [${AGENT}]
    resources: [{ kind: http.route, methods: [GET, POST], path: /echo }]
  - id: no-admin
    effect: deny
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: http.route, path: /admin/** }]
`

t.test('inbound: an allowed route reaches the app, a denied one gets 403 and reaches nothing', async (t) => {
  const file = policyFile(t, SERVER_POLICY)
  const mesh = await startMesh(t, { serverYaml: `policy: { file: "${file}" }` })
  const events = decisions(t)

  const ok = await fetch(`${mesh.outboundUrl}/echo?q=secret`, { method: 'POST', body: 'hi' })
  t.equal(ok.status, 200)
  t.equal(await ok.text(), 'hi')
  const allowed = events.find((e) => e.listener === 'public')
  t.match(allowed, {
    direction: 'inbound',
    subject: AGENT,
    action: 'http.route',
    resource: 'POST /echo',
    decision: 'allow',
    ruleId: 'agent-echo',
    mode: 'enforce',
    engine: 'builtin',
    wouldDeny: false,
  })
  t.type(allowed?.latencyMs, 'number')
  t.type(allowed?.time, Date)
  t.match(allowed?.traceparent, TRACEPARENT, 'a traceparent was created')
  t.equal(mesh.app.seen.at(-1)?.headers.traceparent, allowed?.traceparent, 'and sent to the app')

  // A client's valid traceparent is passed through as it is.
  const mine = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const traced = await fetch(`${mesh.outboundUrl}/echo`, { headers: { traceparent: mine } })
  await traced.text()
  t.equal(events.filter((e) => e.listener === 'public').at(-1)?.traceparent, mine)
  t.equal(mesh.app.seen.at(-1)?.headers.traceparent, mine)

  const before = mesh.app.seen.length
  for (const path of ['/admin/users', '/echo/../admin/users', '/unlisted']) {
    const res = await fetch(`${mesh.outboundUrl}${path}`)
    t.equal(res.status, 403, path)
    // The refusal is the server sidecar's; the agent's sidecar relays it under the upstream's marker.
    t.equal(res.headers.get('x-svidecar-upstream-error'), 'SVD_POLICY_DENIED', path)
    const body = (await res.json()) as { error: { code: string; message: string } }
    t.equal(body.error.code, 'SVD_POLICY_DENIED')
    t.notMatch(body.error.message, /no-admin|agent-echo/, 'the response never names the rule')
  }
  t.equal(mesh.app.seen.length, before, 'nothing denied reached the app')
  const denied = events.filter((e) => e.listener === 'public' && e.decision === 'deny')
  t.same(
    denied.map((e) => [e.resource, e.ruleId]),
    [
      ['GET /admin/users', 'no-admin'],
      ['GET /admin/users', 'no-admin'],
      ['GET /unlisted', undefined],
    ],
    'the normalised path was decided; the default deny has no rule',
  )
})

t.test('outbound: the agent is the subject; a denial is answered by its own sidecar', async (t) => {
  const file = policyFile(
    t,
    `version: 1
rules:
  - id: agent-echo
    effect: allow
    subjects: [${AGENT}]
    resources: [{ kind: http.route, path: /echo }]
`,
  )
  const mesh = await startMesh(t, { agentYaml: `policy: { file: "${file}" }` })
  const events = decisions(t)
  const ok = await fetch(`${mesh.outboundUrl}/echo`, { method: 'POST', body: 'x' })
  t.equal(ok.status, 200)
  await ok.text()
  const before = mesh.app.seen.length
  const res = await fetch(`${mesh.outboundUrl}/other`, { method: 'POST', body: 'x' })
  t.equal(res.status, 403)
  t.equal(res.headers.get('x-svidecar-error'), 'SVD_POLICY_DENIED')
  await res.text()
  t.equal(mesh.app.seen.length, before, 'nothing left the agent')
  t.match(
    events.filter((e) => e.listener === 'egress').map((e) => [e.direction, e.subject, e.decision]),
    [
      ['outbound', AGENT, 'allow'],
      ['outbound', AGENT, 'deny'],
    ],
  )
})

t.test(
  'outbound: the upstream sidecar with an exact ID is the peer, in the policy request and the audit line',
  async (t) => {
    // Only a peer the upstream's own sidecar is will do: a rule for another peer must not match.
    const file = policyFile(
      t,
      `version: 1
rules:
  - id: to-mcp
    effect: allow
    subjects: [${AGENT}]
    resources: [{ kind: http.route, path: /echo }]
    when: peer.id == "${MCP}" && peer.trustDomain == "example.org"
`,
    )
    const lines: string[] = []
    const auditStdout = new Writable({
      write(chunk, _encoding, done) {
        lines.push(
          ...String(chunk)
            .split('\n')
            .filter((l) => l !== ''),
        )
        done()
      },
    })
    const mesh = await startMesh(t, { agentYaml: `policy: { file: "${file}" }`, auditStdout })
    const events = decisions(t)
    const ok = await fetch(`${mesh.outboundUrl}/echo`)
    await ok.text()
    t.equal(ok.status, 200, 'the condition on the peer held')
    const decided = events.find((e) => e.listener === 'egress')
    t.match(decided, {
      direction: 'outbound',
      subject: AGENT,
      peer: MCP,
      decision: 'allow',
      ruleId: 'to-mcp',
    })
    await waitFor(() => lines.some((l) => JSON.parse(l).listener === 'egress'), 'the audit line')
    const line = lines.map((l) => JSON.parse(l)).find((l) => l.listener === 'egress')
    t.match(line, { direction: 'outbound', subject: AGENT, peer: MCP, decision: 'allow', rule: 'to-mcp' })
    // Inbound the peer is the subject, and the line says it once.
    const inbound = lines.map((l) => JSON.parse(l)).find((l) => l.listener === 'public')
    t.equal(inbound, undefined, 'the server sidecar decides nothing here')
  },
)

t.test('an upstream has a peer ID only when its authorizer admits exactly one', async (t) => {
  const id = 'spiffe://example.org/mcp'
  t.equal(exactIdOf({ exact: id }), id)
  t.equal(exactIdOf([{ exact: id }]), id)
  t.equal(exactIdOf({ oneOf: [id] }), id)
  t.equal(exactIdOf([{ exact: id }, { oneOf: [id] }]), id, 'the same one, twice')
  t.equal(exactIdOf({ oneOf: [id, 'spiffe://example.org/other'] }), undefined)
  t.equal(exactIdOf([{ exact: id }, { trustDomain: 'example.org' }]), undefined)
  t.equal(exactIdOf({ trustDomain: 'example.org' }), undefined)
  t.equal(exactIdOf({ pattern: 'spiffe://example.org/*' }), undefined)
  t.equal(exactIdOf({ any: true }), undefined)
})

t.test('a WebSocket upgrade the policy denies is refused before any upstream sees it', async (t) => {
  const file = policyFile(
    t,
    `version: 1
rules:
  - id: agent-echo
    effect: allow
    subjects: [${AGENT}]
    resources: [{ kind: http.route, path: /echo }]
`,
  )
  const mesh = await startMesh(t, { agentYaml: `policy: { file: "${file}" }` })
  let upgrades = 0
  mesh.app.server.on('upgrade', () => upgrades++)
  const ws = new WebSocket(`${mesh.outboundUrl.replace('http', 'ws')}/ws`)
  ws.on('error', () => {})
  const [, response] = (await once(ws, 'unexpected-response')) as [
    unknown,
    import('node:http').IncomingMessage,
  ]
  t.equal(response.statusCode, 403)
  t.equal(response.headers['x-svidecar-error'], 'SVD_POLICY_DENIED')
  response.resume()
  ws.terminate()

  // The same on the server side: its inbound policy allows only /echo to the agent.
  const serverFile = policyFile(t, SERVER_POLICY)
  const guarded = await startMesh(t, { serverYaml: `policy: { file: "${serverFile}" }` })
  let reached = 0
  guarded.app.server.on('upgrade', () => reached++)
  const events = decisions(t)
  const ws2 = new WebSocket(`${guarded.outboundUrl.replace('http', 'ws')}/ws`)
  ws2.on('error', () => {})
  const [, refused] = (await once(ws2, 'unexpected-response')) as [
    unknown,
    import('node:http').IncomingMessage,
  ]
  refused.resume()
  ws2.terminate()
  t.not(refused.statusCode, 101)
  t.match(
    events.find((e) => e.listener === 'public'),
    { resource: 'GET /ws', decision: 'deny', direction: 'inbound' },
  )
  t.equal(upgrades + reached, 0, 'no app saw an upgrade')
})

t.test('audit mode lets a denied request through and says it would have denied it', async (t) => {
  const file = policyFile(t, `mode: audit\n${SERVER_POLICY}`)
  const mesh = await startMesh(t, { serverYaml: `policy: { file: "${file}" }` })
  const events = decisions(t)
  const res = await fetch(`${mesh.outboundUrl}/admin/users`)
  t.equal(res.status, 200, 'the app answered')
  await res.text()
  t.equal(mesh.app.seen.at(-1)?.url, '/admin/users')
  t.match(
    events.find((e) => e.listener === 'public'),
    {
      decision: 'allow',
      ruleId: 'no-admin',
      reason: /^audit: rule no-admin denies http\.route GET \/admin\/users \(not enforced/,
      wouldDeny: true,
      mode: 'audit',
    },
  )
})

t.test('a policy file replaced at run time takes effect; garbage keeps the last good one', async (t) => {
  const file = policyFile(t, SERVER_POLICY)
  const mesh = await startMesh(t, { serverYaml: `policy: { file: "${file}" }` })
  const store = mesh.serverSidecar.policy?.store
  if (store === undefined) throw new Error('the server sidecar has no policy')
  const status = async (path: string) => {
    const res = await fetch(`${mesh.outboundUrl}${path}`)
    await res.text()
    return res.status
  }
  t.equal(await status('/count'), 403)
  writeFileSync(file, SERVER_POLICY.replace('path: /echo', 'path: /count'))
  await waitFor(() => store.counts.success === 2, 'the reload')
  t.equal(await status('/count'), 200, 'the new policy decides')
  t.equal(await status('/echo'), 403, 'and the old rule is gone')

  writeFileSync(file, 'version: 1\nrules: [ {{{ not yaml')
  await waitFor(() => store.counts.failure === 1, 'the failed reload')
  t.equal(await status('/count'), 200, 'the last good policy still decides')
  t.equal(await status('/echo'), 403)

  const admin = mesh.serverSidecar.addresses.admin
  const metrics = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text()
  t.match(metrics, /svidecar_policy_reloads_total\{result="success"\} 2/)
  t.match(metrics, /svidecar_policy_reloads_total\{result="failure"\} 1/)
})

t.test('without a policy section nothing is decided and every authorized request passes', async (t) => {
  const mesh = await startMesh(t)
  const events = decisions(t)
  const res = await fetch(`${mesh.outboundUrl}/admin/users`)
  t.equal(res.status, 200, 'the app answered')
  await res.text()
  t.equal(events.length, 0)
  t.equal(mesh.app.seen.at(-1)?.headers.traceparent, undefined, 'no trace header is added')
})

t.test('engine: cedar decides through the same stage, with its own rule ids', async (t) => {
  const file = join(t.testdir(), 'policy.cedar')
  writeFileSync(
    file,
    `@id("agent-echo")
permit (principal == Spiffe::Workload::"${AGENT}", action == Spiffe::Action::"http.route", resource is Spiffe::Route)
when { ["GET", "POST"].contains(resource.method) && resource.path == "/echo" };

@id("no-admin")
forbid (principal, action == Spiffe::Action::"http.route", resource is Spiffe::Route)
when { principal.trustDomain == "example.org" && resource.path like "/admin/*" };
`,
  )
  const mesh = await startMesh(t, { serverYaml: `policy: { engine: cedar, file: "${file}" }` })
  const events = decisions(t)
  const ok = await fetch(`${mesh.outboundUrl}/echo`, { method: 'POST', body: 'hi' })
  t.equal(ok.status, 200)
  t.equal(await ok.text(), 'hi')
  const before = mesh.app.seen.length
  for (const path of ['/admin/users', '/unlisted']) {
    const res = await fetch(`${mesh.outboundUrl}${path}`)
    await res.text()
    t.equal(res.status, 403, path)
    t.equal(res.headers.get('x-svidecar-upstream-error'), 'SVD_POLICY_DENIED', path)
  }
  t.equal(mesh.app.seen.length, before, 'nothing denied reached the app')
  t.same(
    events.filter((e) => e.listener === 'public').map((e) => [e.engine, e.decision, e.ruleId]),
    [
      ['cedar', 'allow', 'agent-echo'],
      ['cedar', 'deny', 'no-admin'],
      ['cedar', 'deny', undefined],
    ],
  )
})
