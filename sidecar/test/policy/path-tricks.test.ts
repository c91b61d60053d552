// Route paths a server could resolve differently from their text are refused, never matched: a rule on
// /public/* must not admit a request that a server which decodes %2F (or %5C, or "\") before resolving
// dot-segments reads as /admin. Plain encoded slashes (GitLab's /projects/group%2Fname) stay one segment.
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { pathSegments } from '../../src/policy/builtin/paths.ts'
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

t.test('encoded slashes without dot segments stay inside their segment', async (t) => {
  t.same(pathSegments('/projects/group%2Fname/issues'), ['projects', 'group%2Fname', 'issues'])
  t.equal(decide('/projects/group%2Fname/issues').decision, 'allow')
  t.equal(decide('/public/a%2Fb').decision, 'allow')
  t.equal(decide('/public/..a%2Fb').decision, 'allow', 'a segment that only starts with dots is not one')
})
