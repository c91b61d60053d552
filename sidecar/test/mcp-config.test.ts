// A listener's `mcp` section: defaults, what is required, what is refused.
import t from 'tap'
import { ConfigError, parseConfig } from '../src/config/index.ts'

const listener = (mcp: string) => `inbound:
  - name: public
    address: "0.0.0.0:15443"
    forwardTo: "http://127.0.0.1:8080"
    authorize: { any: true }
    mcp: ${mcp}
outbound:
  - name: egress
    address: "127.0.0.1:15001"
    routes: [{ upstream: a }]
    mcp: ${mcp}
upstreams:
  a: { url: "https://a.example" }
`

function problems(text: string): string[] {
  try {
    parseConfig(text, 'x.yaml', {})
    return []
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return err.issues.map((i) => i.path)
  }
}

t.test('defaults are filled in on both kinds of listener', async (t) => {
  const c = parseConfig(listener('{ paths: [/mcp] }'), 'x.yaml', {})
  const expected = {
    paths: ['/mcp'],
    maxMessageBytes: 4194304,
    sessions: { max: 10000, idleTimeout: 3600000 },
    pinTools: false,
  }
  t.same(c.inbound[0]?.mcp, expected)
  t.same(c.outbound[0]?.mcp, expected)
  const tuned = parseConfig(
    listener(
      '{ paths: [/mcp, /v2/mcp], maxMessageBytes: 65536, sessions: { max: 5, idleTimeout: 10m }, pinTools: true }',
    ),
    'x.yaml',
    {},
  )
  t.same(tuned.inbound[0]?.mcp, {
    paths: ['/mcp', '/v2/mcp'],
    maxMessageBytes: 65536,
    sessions: { max: 5, idleTimeout: 600000 },
    pinTools: true,
  })
  t.equal(
    parseConfig(listener('{ paths: [/mcp] }').replace(/ {4}mcp: .*\n/g, ''), 'x.yaml', {}).inbound[0]?.mcp,
    undefined,
  )
})

t.test('paths are required and must be paths; limits are bounded', async (t) => {
  t.same(problems(listener('{}')), ['inbound[0].mcp.paths', 'outbound[0].mcp.paths'])
  t.ok(problems(listener('{ paths: ["/mcp?x"] }')).some((p) => p.includes('paths')))
  t.ok(
    problems(listener('{ paths: [/mcp], maxMessageBytes: 10 }')).some((p) => p.includes('maxMessageBytes')),
  )
  t.ok(
    problems(listener('{ paths: [/mcp], sessions: { idleTimeout: 0 } }')).some((p) =>
      p.includes('idleTimeout'),
    ),
  )
  t.ok(problems(listener('{ paths: [/mcp], extra: 1 }')).some((p) => p.includes('extra')))
})
