// policy.headers: the request headers the configuration selects reach the policy's conditions (CEL
// request.headers, Cedar context.headers) through the running pipeline; any other header, credentials above all,
// never does, and the configuration refuses to select a credential or the peer-ID header.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, parseConfig } from '../src/config/index.ts'
import { on, type PolicyDecisionEvent } from '../src/observe/events.ts'
import { AGENT, startMesh } from './helpers/mesh.ts'

const LISTENER = `inbound:
  - name: in
    address: 127.0.0.1:0
    forwardTo: http://127.0.0.1:8080
    peerIdHeader: x-caller-id
    authorize: { any: true }
`

function configIssues(policy: string): { path: string; message: string }[] {
  try {
    parseConfig(`${LISTENER}policy: ${policy}\n`, 'c.yaml', {})
    return []
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => ({ path: i.path, message: i.message }))
    throw err
  }
}

t.test('policy.headers takes header names, lower-cased, once each', async (t) => {
  const c = parseConfig(
    `${LISTENER}policy: { file: p.yaml, headers: [X-Env, x-tenant, x-env] }\n`,
    'c.yaml',
    {},
  )
  t.same(c.policy?.headers, ['x-env', 'x-tenant'])
  t.equal(parseConfig(`${LISTENER}policy: { file: p.yaml }\n`, 'c.yaml', {}).policy?.headers, undefined)
})

t.test('a credential-bearing header or the peer-ID header is refused with the reason', async (t) => {
  for (const name of [
    'Authorization',
    'proxy-authorization',
    'Cookie',
    'x-api-key',
    'api-key',
    'x-goog-api-key',
  ]) {
    const found = configIssues(`{ file: p.yaml, headers: [x-env, ${name}] }`)
    t.match(found, [{ path: 'policy.headers[1]', message: /a policy never sees it/ }], name)
    t.equal(found.length, 1, `${name}: one problem`)
  }
  t.match(configIssues('{ file: p.yaml, headers: [X-Caller-ID] }'), [
    { path: 'policy.headers[0]', message: /peer-ID header.*whatever the client wrote/ },
  ])
  t.match(configIssues('{ file: p.yaml, headers: [x-spiffe-id] }'), [
    { path: 'policy.headers[0]', message: /peer-ID header/ },
  ])
  t.match(configIssues('{ file: p.yaml, headers: ["x env"] }'), [
    { path: 'policy.headers[0]', message: /not an HTTP header name/ },
  ])
})

function decisions(t: Test): PolicyDecisionEvent[] {
  const seen: PolicyDecisionEvent[] = []
  t.teardown(on('policyDecision', (e) => seen.push(e)))
  return seen
}

/** Sends GET /echo with these headers through the agent's sidecar; the status the server sidecar's policy gave. */
async function status(url: string, headers: Record<string, string>): Promise<number> {
  const res = await fetch(`${url}/echo`, { headers })
  await res.text()
  return res.status
}

const SENT = [
  [{ 'x-env': 'prod' }, 200],
  [{ 'x-env': 'dev' }, 403],
  [{}, 403],
  // A header the configuration did not select is not there (the condition requires its absence).
  [{ 'x-env': 'prod', 'x-other': 'yes' }, 200],
  // Nor is a credential: the condition that tests for one finds nothing.
  [{ 'x-env': 'prod', authorization: 'Bearer tok-SECRET' }, 200],
] as const

const CEL = `version: 1
rules:
  - id: prod-only
    effect: allow
    subjects: [${AGENT}]
    resources: [{ kind: http.route, path: /echo }]
    when: request.headers["x-env"] == "prod" && !("x-other" in request.headers) && !("authorization" in request.headers)
`

const CEDAR = `@id("prod-only")
permit (principal == Spiffe::Workload::"${AGENT}", action == Spiffe::Action::"http.route", resource is Spiffe::Route)
when {
  resource.path == "/echo" && context.headers has "x-env" && context.headers["x-env"] == "prod" &&
  !(context.headers has "x-other") && !(context.headers has "authorization")
};
`

for (const [engine, name, text] of [
  ['builtin', 'policy.yaml', CEL],
  ['cedar', 'policy.cedar', CEDAR],
] as const) {
  t.test(`${engine}: conditions read the selected headers of the request, and only those`, async (t) => {
    const file = join(t.testdir(), name)
    writeFileSync(file, text)
    const mesh = await startMesh(t, {
      serverYaml: `policy: { engine: ${engine}, file: "${file}", headers: [X-Env, x-other-unsent] }`,
    })
    const events = decisions(t)
    for (const [headers, want] of SENT)
      t.equal(await status(mesh.outboundUrl, { ...headers }), want, JSON.stringify(headers))
    t.same(
      events.filter((e) => e.listener === 'public').map((e) => [e.engine, e.decision, e.ruleId]),
      SENT.map(([, want]) => [
        engine,
        want === 200 ? 'allow' : 'deny',
        want === 200 ? 'prod-only' : undefined,
      ]),
    )
  })
}
