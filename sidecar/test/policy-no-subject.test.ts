// A decision asked for an exchange that has no subject (no verified peer, no own SVID) denies, and the decision
// event (so the audit line and the decision metrics) says so: a denial nobody can find in the audit log is a gap.
import { IncomingMessage, type IncomingMessage as Req } from 'node:http'
import { Socket } from 'node:net'
import t from 'tap'
import { on, type PolicyDecisionEvent } from '../src/observe/events.ts'
import { authorize, authorizer } from '../src/pipeline/authorize.ts'
import { Exchange } from '../src/pipeline/exchange.ts'
import { parsePolicy } from '../src/policy/file.ts'
import { policyStage } from '../src/stages/policy.ts'

const engine = parsePolicy(
  `version: 1
rules:
  - { id: all, effect: allow, subjects: [{ trustDomain: example.org }], resources: [{ kind: http.route, path: /** }] }
`,
  'p.yaml',
).engine

function exchange(): Exchange {
  const req = new IncomingMessage(new Socket()) as Req
  req.method = 'GET'
  req.url = '/x'
  req.headers.host = 'app.local'
  return new Exchange({ direction: 'outbound', listener: 'egress', req, upgrade: false })
}

t.test('no subject: denied, and the decision event names the reason', async (t) => {
  const events: PolicyDecisionEvent[] = []
  t.teardown(on('policyDecision', (e) => events.push(e)))
  const ex = exchange()
  t.match(authorize(engine, ex, { kind: 'http.route', method: 'GET', path: '/x' }), {
    decision: 'deny',
    mode: 'enforce',
  })
  t.match(authorizer(engine, ex)({ kind: 'mcp.tool', name: 'search' }), { decision: 'deny' })
  const refused = await policyStage(engine).onRequest(exchange())
  t.match(refused, { code: 'SVD_POLICY_DENIED' })
  t.equal(events.length, 3)
  for (const e of events) {
    t.match(e, {
      listener: 'egress',
      direction: 'outbound',
      subject: '',
      decision: 'deny',
      reason: /no subject/,
      mode: 'enforce',
      engine: 'builtin',
      wouldDeny: false,
    })
  }
  t.match(events[1], { action: 'mcp.tool', resource: 'search' })
})
