// The plain closures for common conditions (builtin/cel-fast.ts) answer exactly as @bufbuild/cel does: every
// expression below, on every request below, gives the same true, false or error through compileCondition as
// through the library alone; and the expressions meant for the fast path do get a closure.
import { celEnv, isCelError, parse, plan } from '@bufbuild/cel'
import { strings } from '@bufbuild/cel/ext'
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { fastCondition } from '../../src/policy/builtin/cel-fast.ts'
import { compileCondition, conditionBindings } from '../../src/policy/builtin/condition.ts'
import type { PolicyRequest } from '../../src/policy/engine.ts'

const FAST = [
  'request.headers["x-env"] == "prod"',
  'request.headers["x-env"] != "prod"',
  '"x-env" in request.headers',
  '!("x-other" in request.headers)',
  'has(peer.id)',
  '!has(peer.id) || peer.trustDomain == "example.org"',
  'peer.id == "spiffe://example.org/mcp"',
  'subject.segments[0] == "deployer"',
  'subject.segments[5] == "x"',
  'subject.trustDomain == "example.org" && request.method == "GET"',
  'request.direction == "inbound" || request.headers["x-env"] == "dev"',
  'request.headers["x-env"] == "prod" && subject.segments[0] == "deployer"',
  'resource.kind == "http.route" && resource.path == "/echo"',
  'resource.name == "search"',
  'request.method in ["GET", "HEAD"]',
  '"deployer" in subject.segments',
  'attributes["model"] == "gpt-4o"',
  'attributes["stream"] == true',
  'attributes.stream',
  'attributes["tokens"] == 100',
  'request.headers["x-env"] == true',
  'request.headers["x-missing"] == "a" || true',
  'false && request.headers["x-missing"] == "a"',
  'request.headers["x-missing"] == "a" && false',
  'true && request.headers["x-missing"] == "a"',
  'request.headers.x == "y"',
]

const SLOW = ['time.getHours("UTC") >= 8', 'request.path.startsWith("/a")', 'subject.segments.size() > 1']

const id = (s: string) => SpiffeId.parse(s)
const REQUESTS: PolicyRequest[] = [
  {
    subject: id('spiffe://example.org/deployer/x'),
    resource: { kind: 'mcp.tool', name: 'search' },
    context: {
      time: new Date(0),
      headers: { 'x-env': 'prod' },
      attributes: { model: 'gpt-4o', stream: true },
    },
  },
  {
    subject: id('spiffe://example.org/agent'),
    peer: id('spiffe://example.org/mcp'),
    resource: { kind: 'http.route', method: 'GET', path: '/echo' },
    context: { time: new Date(0), direction: 'inbound', headers: { 'x-env': 'dev', 'x-other': '' } },
  },
  {
    subject: id('spiffe://other.example/deployer'),
    peer: id('spiffe://other.example/svc'),
    resource: { kind: 'http.route', method: 'POST', path: '/a' },
    context: { time: new Date(0), direction: 'outbound', attributes: { tokens: 100n, stream: 'yes' } },
  },
  {
    subject: id('spiffe://example.org'),
    resource: { kind: 'llm.model', name: 'gpt-4o' },
    context: { time: new Date(0), headers: {} },
  },
]

const env = celEnv({ funcs: [...strings] })

function reference(source: string, request: PolicyRequest): boolean | 'error' {
  const r = plan(env, parse(source))(conditionBindings(request) as never)
  return isCelError(r) || typeof r !== 'boolean' ? 'error' : r
}

t.test("the fast path gives the library's answers", async (t) => {
  for (const source of FAST) {
    t.ok(fastCondition(parse(source).expr as never), `${source}: has a closure`)
    const c = compileCondition(source)
    for (const [i, request] of REQUESTS.entries()) {
      const got = c.evaluate(conditionBindings(request))
      t.equal(got instanceof Error ? 'error' : got, reference(source, request), `${source} on request ${i}`)
    }
  }
})

t.test('an error still says what the library says', async (t) => {
  const c = compileCondition('request.headers["x-env"] == "prod"')
  const got = c.evaluate(conditionBindings(REQUESTS[2] as PolicyRequest))
  t.type(got, Error)
  t.match((got as Error).message, /x-env/)
})

t.test('expressions outside the subset get no closure', async (t) => {
  for (const source of SLOW) t.equal(fastCondition(parse(source).expr as never), undefined, source)
})
