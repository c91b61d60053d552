// The OPA engine against a real OPA server and against small raw HTTP servers that misbehave on purpose:
// the documented result shape, fail-closed denials with reasons, the deadline, and the decision cache.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createNetServer, type Socket } from 'node:net'
import { createOpaEngine, isSvidecarError, type PolicyDecision, type PolicyRequest } from 'svidecar'
import t, { type Test } from 'tap'
import { SpiffeId } from 'workload-api-client'
import { startOpa } from '../harness/opa.ts'
import { requireOpa } from '../harness/opa-available.ts'

const TIME = new Date('2026-11-30T10:00:00.750Z')

function request(name = 'search', subject = 'spiffe://example.org/agents/a1'): PolicyRequest {
  return {
    subject: SpiffeId.parse(subject),
    resource: { kind: 'mcp.tool', name },
    context: { time: TIME, direction: 'inbound' },
  }
}

/** A raw HTTP server whose answers the test scripts; it records each request body. */
async function rawServer(
  t: Test,
  answer: (req: IncomingMessage, res: ServerResponse, body: string, n: number) => void,
): Promise<{ url: string; bodies: string[]; headers: IncomingMessage['headers'][] }> {
  const bodies: string[] = []
  const headers: IncomingMessage['headers'][] = []
  const srv = createHttpServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => {
      body += c
    })
    req.on('end', () => {
      bodies.push(body)
      headers.push(req.headers)
      answer(req, res, body, bodies.length)
    })
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    srv.closeAllConnections()
    return new Promise((r) => srv.close(r))
  })
  return { url: `http://127.0.0.1:${(srv.address() as { port: number }).port}`, bodies, headers }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

t.test('options are checked when the engine is made', async (t) => {
  const bad: [string, Parameters<typeof createOpaEngine>[0]][] = [
    ['not a URL', { url: 'nope', package: 'a.b' }],
    ['another scheme', { url: 'ftp://127.0.0.1:1', package: 'a.b' }],
    ['credentials in the URL', { url: 'http://u:p@127.0.0.1:1', package: 'a.b' }],
    ['a path in the URL', { url: 'http://127.0.0.1:1/v1/data', package: 'a.b' }],
    ['a package that is no Rego path', { url: 'http://127.0.0.1:1', package: 'a..b' }],
    ['a package with a slash trick', { url: 'http://127.0.0.1:1', package: '../v1/policies' }],
    [
      'a token that cannot be a header value',
      { url: 'http://127.0.0.1:1', package: 'a', token: 'a\r\nx: y' },
    ],
    ['a zero deadline', { url: 'http://127.0.0.1:1', package: 'a', timeoutMs: 0 }],
    ['a negative cache size', { url: 'http://127.0.0.1:1', package: 'a', cache: { maxEntries: -1 } }],
  ]
  for (const [what, options] of bad) {
    let caught: unknown
    try {
      createOpaEngine(options)
    } catch (err) {
      caught = err
    }
    t.ok(isSvidecarError(caught, 'SVD_CONFIG_INVALID'), `${what}: SVD_CONFIG_INVALID`)
  }
  const e = createOpaEngine({ url: 'http://127.0.0.1:1', package: 'svidecar.authz', token: 'tok-SECRET' })
  t.equal(e.endpoint, 'http://127.0.0.1:1/v1/data/svidecar/authz', 'the package is asked at its data path')
  t.notMatch(e.endpoint, /SECRET/)
  await e.close()
})

t.test('the input document has the documented shape', async (t) => {
  const srv = await rawServer(t, (_q, res) => json(res, 200, { result: { allow: true } }))
  const engine = createOpaEngine({ url: srv.url, package: 'svidecar.authz', timeoutMs: 5000 })
  t.teardown(() => engine.close())
  const d = await engine.decide({
    subject: SpiffeId.parse('spiffe://example.org/ns/prod/sa/agent'),
    peer: SpiffeId.parse('spiffe://other.org/api'),
    resource: { kind: 'http.route', method: 'GET', path: '/v1/%61dmin/x?token=abc' },
    context: {
      time: TIME,
      direction: 'outbound',
      headers: { 'x-env': 'prod' },
      attributes: { maxTokens: 100 },
    },
  })
  t.equal(d.decision, 'allow')
  t.same(JSON.parse(srv.bodies[0] as string), {
    input: {
      subject: {
        id: 'spiffe://example.org/ns/prod/sa/agent',
        trustDomain: 'example.org',
        path: '/ns/prod/sa/agent',
        segments: ['ns', 'prod', 'sa', 'agent'],
      },
      peer: { id: 'spiffe://other.org/api', trustDomain: 'other.org', path: '/api', segments: ['api'] },
      action: 'http.route',
      resource: {
        kind: 'http.route',
        method: 'GET',
        path: '/v1/%61dmin/x',
        segments: ['v1', 'admin', 'x'],
      },
      context: {
        time: '2026-11-30T10:00:00Z',
        direction: 'outbound',
        method: 'GET',
        path: '/v1/%61dmin/x',
        headers: { 'x-env': 'prod' },
        attributes: { maxTokens: 100 },
      },
    },
  })
  t.notMatch(srv.bodies[0] as string, /token=abc/, 'the query, which can carry a token, is not sent')
  t.equal(srv.headers[0]?.['content-type'], 'application/json')
  t.equal(srv.headers[0]?.authorization, undefined, 'no token configured, none sent')
})

t.test('a request the sidecar cannot match is denied without asking', async (t) => {
  const srv = await rawServer(t, (_q, res) => json(res, 200, { result: { allow: true } }))
  const engine = createOpaEngine({ url: srv.url, package: 'svidecar.authz' })
  t.teardown(() => engine.close())
  const cases: PolicyRequest['resource'][] = [
    { kind: 'http.route', method: 'GET', path: '/api/../admin' },
    { kind: 'http.route', method: 'GET', path: '/api//x' },
    { kind: 'mcp.resource', uri: 'file:///repo/../etc/passwd' },
    { kind: 'smtp.mail', name: 'x' } as unknown as PolicyRequest['resource'],
  ]
  for (const resource of cases) {
    const d = engine.decide({ ...request(), resource }) as PolicyDecision
    t.equal(d.decision, 'deny', `${JSON.stringify(resource)} is denied`)
    t.equal(d.engine, 'opa')
    t.match(d.reason, /denied before asking OPA/)
  }
  const big = request()
  const d = engine.decide({
    ...big,
    context: { ...big.context, attributes: { tokens: 10n } },
  }) as PolicyDecision
  t.equal(d.decision, 'deny', 'an attribute JSON cannot carry (a BigInt) denies instead of throwing')
  t.match(d.reason, /cannot be sent as JSON/)
  t.equal(srv.bodies.length, 0, 'the decision service was never asked')
})

t.test('malformed and failed answers deny, naming the failure', async (t) => {
  const answers: [string, (res: ServerResponse) => void, RegExp][] = [
    ['not JSON', (res) => json(res, 200, '{"result": {"allow": tr'), /not JSON/],
    ['no result (undefined decision)', (res) => json(res, 200, {}), /undefined for this input/],
    ['a result that is not an object', (res) => json(res, 200, { result: true }), /not an object/],
    ['allow not a boolean', (res) => json(res, 200, { result: { allow: 'yes' } }), /no boolean "allow"/],
    [
      'a rule id of the wrong type',
      (res) => json(res, 200, { result: { allow: true, rule_id: 7 } }),
      /rule_id/,
    ],
    ['an unknown mode', (res) => json(res, 200, { result: { allow: false, mode: 'dry-run' } }), /"mode"/],
    ['allow in audit mode', (res) => json(res, 200, { result: { allow: true, mode: 'audit' } }), /audit/],
    [
      'a response too large',
      (res) => json(res, 200, { result: { allow: true, pad: 'x'.repeat(100_000) } }),
      /larger/,
    ],
    [
      'HTTP 500 with an OPA error body',
      (res) => json(res, 500, { code: 'internal_error', message: 'tok-SECRET in policy text' }),
      /answered HTTP 500 \(internal_error\)/,
    ],
    ['HTTP 404', (res) => json(res, 404, 'not found'), /answered HTTP 404/],
  ]
  for (const [what, answer, reason] of answers) {
    const srv = await rawServer(t, (_q, res) => answer(res))
    const engine = createOpaEngine({
      url: srv.url,
      package: 'svidecar.authz',
      timeoutMs: 5000,
      token: 'tok-SECRET',
    })
    const d = await engine.decide(request())
    await engine.close()
    t.equal(d.decision, 'deny', `${what}: denied`)
    t.equal(d.mode, 'enforce', `${what}: enforced`)
    t.equal(d.ruleId, undefined, `${what}: no rule decided`)
    t.match(d.reason, /^opa: /, `${what}: the reason says OPA failed`)
    t.match(d.reason, reason, `${what}: the reason names the failure (${d.reason})`)
    t.notMatch(d.reason, /SECRET/, `${what}: no token or server message in the reason`)
    t.equal(srv.headers[0]?.authorization, 'Bearer tok-SECRET', `${what}: the token was sent`)
  }
})

t.test('a server that never answers is denied at the deadline', async (t) => {
  for (const stall of ['no response at all', 'headers but no body']) {
    const sockets = new Set<Socket>()
    const srv = createNetServer((s) => {
      sockets.add(s)
      s.on('error', () => {})
      // Reads the request and never finishes an answer.
      if (stall === 'headers but no body') {
        s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"result":')
      }
    })
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
    t.teardown(() => {
      for (const s of sockets) s.destroy()
      return new Promise((r) => srv.close(r))
    })
    const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}`
    const engine = createOpaEngine({ url, package: 'svidecar.authz', timeoutMs: 50 })
    const started = performance.now()
    const d = await engine.decide(request())
    const waited = performance.now() - started
    await engine.close()
    t.equal(d.decision, 'deny', `${stall}: denied`)
    t.match(
      d.reason,
      /^opa: no answer from http:\/\/127\.0\.0\.1:\d+\/v1\/data\/svidecar\/authz within 50 ms/,
      stall,
    )
    // Not a speed assertion: the engine must not give up before its deadline.
    t.ok(waited >= 45, `${stall}: waited for the deadline (${waited.toFixed(0)} ms)`)
  }
})

t.test('failures are never cached; concurrent identical requests share one call', async (t) => {
  let release: (() => void) | undefined
  const srv = await rawServer(t, (_q, res, _b, n) => {
    if (n === 1) json(res, 503, 'busy')
    else if (n === 2) release = () => json(res, 200, { result: { allow: true, rule_id: 'r1' } })
    else json(res, 200, { result: { allow: false } })
  })
  const engine = createOpaEngine({ url: srv.url, package: 'svidecar.authz', timeoutMs: 5000 })
  t.teardown(() => engine.close())
  const first = await engine.decide(request())
  t.equal(first.decision, 'deny')
  t.match(first.reason, /HTTP 503/)
  const a = engine.decide(request())
  const b = engine.decide(request())
  t.ok(a instanceof Promise && b instanceof Promise, 'the failure was not cached: both ask')
  await until(() => release !== undefined, 'the second request')
  release?.()
  const [da, db] = await Promise.all([a, b])
  t.equal(da.decision, 'allow')
  t.equal(db.decision, 'allow')
  t.equal(da.ruleId, 'r1')
  t.equal(srv.bodies.length, 2, 'one call for the two concurrent decisions')
  const c = engine.decide(request())
  t.notOk(c instanceof Promise, 'the good answer is cached')
  t.equal((c as PolicyDecision).decision, 'allow')
})

t.test('the cache is bounded', async (t) => {
  const srv = await rawServer(t, (_q, res) => json(res, 200, { result: { allow: true } }))
  const engine = createOpaEngine({ url: srv.url, package: 'svidecar.authz', cache: { maxEntries: 2 } })
  t.teardown(() => engine.close())
  for (const name of ['a', 'b']) await engine.decide(request(name))
  t.notOk(engine.decide(request('a')) instanceof Promise, 'a hit refreshes a')
  await engine.decide(request('c')) // evicts b, the least recently used
  t.notOk(engine.decide(request('a')) instanceof Promise, 'a is still cached')
  t.ok(engine.decide(request('b')) instanceof Promise, 'b was evicted')
  const off = createOpaEngine({ url: srv.url, package: 'svidecar.authz', cache: { ttlMs: 0 } })
  t.teardown(() => off.close())
  await off.decide(request('a'))
  t.ok(off.decide(request('a')) instanceof Promise, 'ttlMs 0 turns the cache off')
})

if (requireOpa(t)) {
  const opa = await startOpa(t, {
    'authz.rego': `package svidecar.authz

default allow := false

allow if input.subject.trustDomain == "example.org"

rule_id := "example-org" if allow

rule_id := "default-deny" if not allow
`,
    'audit.rego': `package svidecar.audit

allow := false

mode := "audit"

rule_id := "trial"

reason := "trial\\nrule: tools are off"
`,
    'conflict.rego': `package svidecar.conflict

allow = true if input.action

allow = false if input.action
`,
  })

  t.test('opa: allow, deny and audit answers map to decisions', async (t) => {
    const engine = createOpaEngine({ url: opa.url, package: 'svidecar.authz', timeoutMs: 5000 })
    t.teardown(() => engine.close())
    const ok = await engine.decide(request())
    t.match(ok, { decision: 'allow', ruleId: 'example-org', mode: 'enforce', engine: 'opa' })
    t.equal(ok.reason, 'rule example-org allows mcp.tool search')
    const no = await engine.decide(request('search', 'spiffe://other.org/x'))
    t.match(no, { decision: 'deny', ruleId: 'default-deny', mode: 'enforce', engine: 'opa' })

    const audit = createOpaEngine({ url: opa.url, package: 'svidecar.audit', timeoutMs: 5000 })
    t.teardown(() => audit.close())
    const a = await audit.decide(request())
    t.match(a, { decision: 'allow', ruleId: 'trial', mode: 'audit', wouldDeny: true, engine: 'opa' })
    t.equal(a.reason, 'audit: trial rule: tools are off (not enforced)', 'the policy reason, on one line')
  })

  t.test('opa: an evaluation error (HTTP 500) and an undefined package deny', async (t) => {
    const conflict = createOpaEngine({ url: opa.url, package: 'svidecar.conflict', timeoutMs: 5000 })
    t.teardown(() => conflict.close())
    const c = await conflict.decide(request())
    t.equal(c.decision, 'deny')
    t.match(c.reason, /answered HTTP 500 \(internal_error\)/)
    const none = createOpaEngine({ url: opa.url, package: 'svidecar.nothing_here', timeoutMs: 5000 })
    t.teardown(() => none.close())
    const n = await none.decide(request())
    t.equal(n.decision, 'deny')
    t.match(n.reason, /undefined for this input/)
  })

  t.test('opa: a cache hit does not ask OPA again; an expired entry does', async (t) => {
    let now = 1_000_000
    const engine = createOpaEngine({
      url: opa.url,
      package: 'svidecar.authz',
      timeoutMs: 5000,
      cache: { ttlMs: 1000 },
      now: () => now,
    })
    t.teardown(() => engine.close())
    // Counted by the tool name only this test asks about, so a late log line of another test cannot count.
    const logged = () => opa.decisions('"name":"cache-me"')
    const miss = engine.decide(request('cache-me'))
    t.ok(miss instanceof Promise, 'a miss asks')
    t.equal((await miss).decision, 'allow')
    await until(() => logged() === 1, 'OPA to log the decision')
    now += 999
    const hit = engine.decide(request('cache-me'))
    t.notOk(hit instanceof Promise, 'a hit answers at once')
    t.match(hit, { decision: 'allow', ruleId: 'example-org' })
    now += 1
    const expired = engine.decide(request('cache-me'))
    t.ok(expired instanceof Promise, 'an expired entry asks again')
    await expired
    await until(() => logged() >= 2, 'OPA to log the second decision')
    t.equal(logged(), 2, 'OPA decided twice for three requests: the hit never reached it')
  })

  t.test('opa: a stopped OPA server means deny, with the reason', async (t) => {
    const own = await startOpa(t, { 'authz.rego': 'package svidecar.authz\n\nallow := true\n' })
    const engine = createOpaEngine({ url: own.url, package: 'svidecar.authz', timeoutMs: 2000 })
    t.teardown(() => engine.close())
    t.equal((await engine.decide(request('before'))).decision, 'allow')
    await own.stop()
    const d = await engine.decide(request('after'))
    t.equal(d.decision, 'deny')
    t.match(d.reason, /^opa: cannot ask http:\/\/127\.0\.0\.1:\d+\/v1\/data\/svidecar\/authz/)
    t.match(d.reason, /fail closed/)
  })
}
