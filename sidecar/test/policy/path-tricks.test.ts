// Route paths a server could resolve differently from their text are refused, never matched: a rule on
// /public/* must not admit a request that a server which decodes %2F (or %5C, or "\") before resolving
// dot-segments reads as /admin. Plain encoded slashes (GitLab's /projects/group%2Fname) stay one segment.
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { pathSegments, uriSegments } from '../../src/policy/builtin/paths.ts'
import { parsePolicy } from '../../src/policy/file.ts'

const engine = parsePolicy(
  `version: 1
rules:
  - id: public
    effect: allow
    subjects: [spiffe://td/agent]
    resources: [{ kind: http.route, methods: [GET], path: /public/* }, { kind: http.route, methods: [GET], path: /projects/*/issues }]
`,
  'p.yaml',
).engine

const decide = (path: string) =>
  engine.decide({
    subject: SpiffeId.parse('spiffe://td/agent'),
    resource: { kind: 'http.route', method: 'GET', path },
    context: { time: new Date() },
  })

t.test('a dot segment hidden behind an encoded separator is refused', async (t) => {
  for (const path of [
    '/public/..%2Fadmin',
    '/public/..%2fadmin',
    '/public/x%2F..%2F..%2Fadmin',
    '/public/%2e%2e%2Fadmin',
    '/public/..%5Cadmin',
    '/public/.%2F..%2Fadmin',
    '/public/x%2F.',
    '/public/..\\admin',
  ]) {
    t.type(pathSegments(path), 'string', `${path}: no segments`)
    const d = decide(path)
    t.match(d, { decision: 'deny', mode: 'enforce' }, path)
    t.notOk(d.ruleId, `${path}: no rule matched it`)
    t.match(d.reason, /cannot be matched: the path has a dot segment/, `${path}: the reason says why`)
  }
})

t.test(
  'a dot segment with path parameters (..;x), which Tomcat and Spring strip before resolving, is refused',
  async (t) => {
    for (const path of [
      '/projects/..;/issues',
      '/projects/..;jsessionid=1/issues',
      '/projects/.;x/issues',
      '/projects/x%2F..;/issues',
    ]) {
      t.type(pathSegments(path), 'string', `${path}: no segments`)
      const d = decide(path)
      t.match(d, { decision: 'deny', mode: 'enforce' }, path)
      t.notOk(d.ruleId, `${path}: no rule matched it`)
    }
    t.equal(decide('/public/a;v=1').decision, 'allow', 'parameters on a plain segment stay part of it')
    t.equal(decide('/public/...;x').decision, 'allow', 'three dots are a name')
  },
)

t.test('encoded slashes without dot segments stay inside their segment', async (t) => {
  t.same(pathSegments('/projects/group%2Fname/issues'), ['projects', 'group%2Fname', 'issues'])
  t.equal(decide('/projects/group%2Fname/issues').decision, 'allow')
  t.equal(decide('/public/a%2Fb').decision, 'allow')
  t.equal(decide('/public/..a%2Fb').decision, 'allow', 'a segment that only starts with dots is not one')
})

const files = parsePolicy(
  `version: 1
rules:
  - id: repo
    effect: allow
    subjects: [spiffe://td/agent]
    resources: [{ kind: mcp.resource, uri: "file:///repo/**" }, { kind: mcp.resource, uri: "db://customers/*" }]
`,
  'p.yaml',
).engine

const read = (uri: string) =>
  files.decide({
    subject: SpiffeId.parse('spiffe://td/agent'),
    resource: { kind: 'mcp.resource', uri },
    context: { time: new Date() },
  })

t.test(
  'MCP resource URIs: a dot segment in any spelling the WHATWG URL parser resolves is refused',
  async (t) => {
    for (const uri of [
      'file:///repo/%2e%2e/etc/passwd',
      'file:///repo/%2E./etc/passwd',
      'file:///repo/.%2e/etc',
      'file:///repo/%2e/x',
      'file:///repo\\..\\etc\\passwd',
      'file:///repo/x%2F..%2F..%2Fetc',
      'db://customers/%2e%2e',
    ]) {
      // What a server that reads the URI with new URL() (or fileURLToPath) gets: never under the allowed root.
      if (uri.startsWith('file:') && !uri.includes('%2F') && /\.\.|%2e%2e|%2e\.|\.%2e/i.test(uri))
        t.notMatch(new URL(uri).pathname, /^\/repo\/[^/]/, uri)
      t.type(uriSegments(uri), 'string', `${uri}: no segments`)
      const d = read(uri)
      t.match(d, { decision: 'deny', mode: 'enforce' }, uri)
      t.notOk(d.ruleId, `${uri}: no rule matched it`)
      t.match(d.reason, /cannot be matched: the URI has a dot segment/, `${uri}: the reason says why`)
    }
    t.equal(read('file:///repo/a/b.txt').decision, 'allow')
    t.equal(
      read('file:///repo/..a/b.txt').decision,
      'allow',
      'a name that starts with dots is not a dot segment',
    )
    t.equal(read('db://customers/%2e%2eok').decision, 'allow')
  },
)

t.test(
  'a condition reads resource.path in the normal form the rules match (as Cedar does), request.path as sent',
  async (t) => {
    const guarded = parsePolicy(
      `version: 1
rules:
  - id: no-admin
    effect: deny
    subjects: [spiffe://td/agent]
    resources: [{ kind: http.route, path: /** }]
    when: resource.path.startsWith("/admin/") || resource.path == "/admin"
  - id: rest
    effect: allow
    subjects: [spiffe://td/agent]
    resources: [{ kind: http.route, path: /** }]
    when: request.path == "/%61dmin/x" || !request.path.contains("%")
`,
      'p.yaml',
    ).engine
    const ask = (path: string) =>
      guarded.decide({
        subject: SpiffeId.parse('spiffe://td/agent'),
        resource: { kind: 'http.route', method: 'GET', path },
        context: { time: new Date(), method: 'GET', path },
      })
    for (const path of ['/admin/x', '/%61dmin/x', '/%61%64%6D%69%6E', '/a%64min/x']) {
      t.match(ask(path), { decision: 'deny', ruleId: 'no-admin' }, path)
    }
    t.match(ask('/docs/a%2Fb'), { decision: 'deny' }, 'request.path is what the client sent')
    t.match(ask('/docs/x'), { decision: 'allow', ruleId: 'rest' })
  },
)

t.test(
  'a route pattern with characters a request target cannot carry raw matches their UTF-8 escapes (RFC 3987 §3.1)',
  async (t) => {
    const intl = parsePolicy(
      `version: 1
rules:
  - id: no-menu
    effect: deny
    subjects: [spiffe://td/agent]
    resources: [{ kind: http.route, path: "/café/**" }, { kind: http.route, path: "/my files/*.pdf" }]
  - id: rest
    effect: allow
    subjects: [spiffe://td/agent]
    resources: [{ kind: http.route, path: /** }]
`,
      'p.yaml',
    ).engine
    const ask = (path: string) =>
      intl.decide({
        subject: SpiffeId.parse('spiffe://td/agent'),
        resource: { kind: 'http.route', method: 'GET', path },
        context: { time: new Date() },
      })
    // What clients send: fetch and curl percent-encode UTF-8; Node's server refuses raw non-ASCII in a target.
    t.equal(new URL('http://h/café/menu').pathname, '/caf%C3%A9/menu')
    for (const path of ['/caf%C3%A9/menu', '/caf%c3%a9/menu', '/caf%C3%A9', '/my%20files/a.pdf']) {
      t.match(ask(path), { decision: 'deny', ruleId: 'no-menu' }, path)
    }
    t.match(ask('/cafe/menu'), { decision: 'allow', ruleId: 'rest' })
    t.match(ask('/my%20files/a.txt'), { decision: 'allow', ruleId: 'rest' })
  },
)
