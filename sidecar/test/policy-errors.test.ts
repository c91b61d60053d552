// A denial because the policy engine failed (OPA unreachable, Cedar refusing the request, an engine that
// throws) or because a rule's condition failed to evaluate is not the policy's answer: an operator must be able
// to tell it from a plain deny. svidecar_policy_errors_total{action,engine,kind} counts them (kind: engine,
// condition), beside the unchanged decision counter, and the audit line says `"error"`. Plain denials count
// nowhere but in the decisions.

import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { IncomingMessage, type IncomingMessage as Req } from 'node:http'
import { createServer, Socket } from 'node:net'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { SpiffeId } from 'workload-api-client'
import { on, type PolicyDecisionEvent } from '../src/observe/events.ts'
import { createMetrics } from '../src/observe/metrics.ts'
import { authorize } from '../src/pipeline/authorize.ts'
import { Exchange } from '../src/pipeline/exchange.ts'
import { parsePolicy } from '../src/policy/file.ts'
import { AGENT, startMesh } from './helpers/mesh.ts'

/** `name{labels} value` lines of one metric family, labels as written. */
function samples(text: string, name: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (m?.[1] === name) out[m[2] ?? ''] = Number(m[3])
  }
  return out
}

async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const { port } = s.address() as { port: number }
  await new Promise((r) => s.close(r))
  return port
}

function auditSink(): { stream: Writable; records: () => Record<string, unknown>[] } {
  let text = ''
  const stream = new Writable({
    write(chunk, _enc, done) {
      text += chunk
      done()
    },
  })
  return {
    stream,
    records: () =>
      text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l)),
  }
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The server sidecar's /metrics after `paths` were asked for through the mesh (each denied). */
async function denied(t: Test, serverYaml: string, paths: string[]) {
  const audit = auditSink()
  const mesh = await startMesh(t, { serverYaml, auditStdout: audit.stream })
  for (const path of paths) {
    const res = await fetch(`${mesh.outboundUrl}${path}`)
    await res.text()
    t.equal(res.status, 403, `${path} denied`)
  }
  const admin = mesh.serverSidecar.addresses.admin
  const text = await (await fetch(`http://${admin.host}:${admin.port}/metrics`)).text()
  await waitFor(
    () => audit.records().filter((r) => r.listener === 'public').length >= paths.length,
    'the audit lines',
  )
  return { text, audit: audit.records().filter((r) => r.listener === 'public') }
}

t.test('OPA unreachable: a decision error, not only a deny', async (t) => {
  const port = await closedPort()
  const { text, audit } = await denied(
    t,
    `policy: { engine: opa, opa: { url: "http://127.0.0.1:${port}", package: svidecar.authz, timeout: 2s } }`,
    ['/echo'],
  )
  t.same(samples(text, 'svidecar_policy_decisions_total'), {
    '{action="http.route",decision="deny",engine="opa",mode="enforce"}': 1,
  })
  t.same(samples(text, 'svidecar_policy_errors_total'), {
    '{action="http.route",engine="opa",kind="engine"}': 1,
  })
  t.match(audit, [{ decision: 'deny', engine: 'opa', error: 'engine', reason: /fail closed/ }])
  const ours = text
    .split('\n')
    .filter((l) => /^(# (HELP|TYPE) )?svidecar_policy_/.test(l))
    .join('\n')
  // promtool (Debian's prometheus package, installed by test/harness/debian.ts) lints names, units and help.
  t.equal(execFileSync('promtool', ['check', 'metrics'], { input: `${ours}\n`, encoding: 'utf8' }).trim(), '')
})

t.test('Cedar: a condition that fails to evaluate is a condition error; a plain deny is none', async (t) => {
  const file = join(t.testdir(), 'policy.cedar')
  writeFileSync(
    file,
    `@id("broken")
permit (principal, action == Spiffe::Action::"http.route", resource is Spiffe::Route)
when { resource.path == "/broken" && context.attributes.missing };

@id("no-admin")
forbid (principal, action == Spiffe::Action::"http.route", resource is Spiffe::Route)
when { resource.path == "/admin" };
`,
  )
  const { text, audit } = await denied(t, `policy: { engine: cedar, file: "${file}" }`, [
    '/broken',
    '/admin',
    '/unlisted',
  ])
  t.same(samples(text, 'svidecar_policy_decisions_total'), {
    '{action="http.route",decision="deny",engine="cedar",mode="enforce"}': 3,
  })
  t.same(
    samples(text, 'svidecar_policy_errors_total'),
    { '{action="http.route",engine="cedar",kind="condition"}': 1 },
    'only the decision a failed condition made',
  )
  t.same(
    audit.map((r) => [r.resource, r.error]),
    [
      ['GET /broken', 'condition'],
      ['GET /admin', undefined],
      ['GET /unlisted', undefined],
    ],
  )
})

t.test('an engine that throws: an engine error', async (t) => {
  // No real engine throws on purpose: this one stands in for a bug in an engine, which authorize() turns into
  // a denial. The rest is real: the exchange, the decision event, the metrics that count it.
  const real = parsePolicy('version: 1\nrules: []\n', 'p.yaml').engine
  const throwing = {
    name: real.name,
    decide: () => {
      throw new Error('boom')
    },
  }
  const metrics = createMetrics({ owner: 'test', inbound: new Set(['public']), outbound: new Set() })
  t.teardown(metrics.subscribe())
  const events: PolicyDecisionEvent[] = []
  t.teardown(on('policyDecision', (e) => events.push(e)))
  const req = new IncomingMessage(new Socket()) as Req
  req.method = 'GET'
  req.url = '/x'
  req.headers.host = 'app.local'
  const exchange = new Exchange({
    direction: 'inbound',
    listener: 'public',
    req,
    upgrade: false,
    peer: SpiffeId.parse(AGENT),
  })
  t.match(authorize(throwing, exchange, { kind: 'http.route', method: 'GET', path: '/x' }), {
    decision: 'deny',
  })
  t.match(authorize(real, exchange, { kind: 'http.route', method: 'GET', path: '/x' }), { decision: 'deny' })
  t.same(
    events.map((e) => e.error),
    ['engine', undefined],
  )
  const text = await metrics.registry.metrics()
  t.same(samples(text, 'svidecar_policy_errors_total'), {
    '{action="http.route",engine="builtin",kind="engine"}': 1,
  })
  t.equal(
    samples(text, 'svidecar_policy_decisions_total')[
      '{action="http.route",decision="deny",engine="builtin",mode="enforce"}'
    ],
    2,
  )
})
