// The config file: schema, meaning, line numbers, environment overrides, and the shipped examples.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DevCa } from '@svidecar/certs'
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { type ConfigError, type ConfigIssue, loadConfig, parseConfig, SCHEMA } from '../src/config/index.ts'
import { fieldPaths } from '../src/config/schema.ts'
import { authorizerFromSpec } from '../src/tls/authorizer.ts'

const MINIMAL = `inbound:
  - name: public
    address: "0.0.0.0:15443"
    forwardTo: "http://127.0.0.1:8080"
    authorize: { any: true }
`

function fullIssues(text: string, env: NodeJS.ProcessEnv = {}): readonly ConfigIssue[] {
  try {
    parseConfig(text, 'test.yaml', env)
  } catch (err) {
    if ((err as ConfigError).code !== 'SVD_CONFIG_INVALID') throw err
    return (err as ConfigError).issues
  }
  throw new Error('expected a ConfigError')
}

function issues(text: string, env: NodeJS.ProcessEnv = {}): { path: string; line?: number }[] {
  return fullIssues(text, env).map((i) => ({
    path: i.path,
    ...(i.line === undefined ? {} : { line: i.line }),
  }))
}

t.test('every example in deploy/examples is valid', async (t) => {
  const dir = fileURLToPath(new URL('../../deploy/examples/', import.meta.url))
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'))
  t.ok(files.length >= 3)
  for (const f of files) {
    const config = loadConfig(join(dir, f), {})
    t.ok(config.inbound.length + config.outbound.length > 0, f)
  }
})

t.test('defaults are safe and complete', async (t) => {
  const c = parseConfig(MINIMAL, 'minimal.yaml', {})
  t.same(c.admin.address, { host: '127.0.0.1', port: 15000 }, 'admin on loopback')
  t.equal(c.tls.minVersion, 'TLSv1.2')
  t.equal(c.drainTimeout, 20_000)
  t.same(c.limits, {
    maxHeaderBytes: 16_384,
    maxHeaderCount: 100,
    headersTimeout: 10_000,
    requestTimeout: 0,
    idleTimeout: 60_000,
    bodyIdleTimeout: 30_000,
    maxConnections: 4096,
    connectTimeout: 5000,
    maxBodyBytes: 0,
  })
  t.equal(c.inbound[0]?.peerIdHeader, 'x-spiffe-id')
  t.equal(c.workloadApi.socket, undefined, 'the library falls back to SPIFFE_ENDPOINT_SOCKET')
})

t.test('durations and addresses', async (t) => {
  const c = parseConfig(
    `${MINIMAL}drainTimeout: 1500ms\nlimits: { headersTimeout: 2s, idleTimeout: 5m, requestTimeout: 1h, connectTimeout: 250, bodyIdleTimeout: 3s }\nadmin: { address: "[::1]:9901" }\n`,
    'x.yaml',
    {},
  )
  t.equal(c.drainTimeout, 1500)
  t.same(
    [c.limits.headersTimeout, c.limits.idleTimeout, c.limits.requestTimeout, c.limits.connectTimeout],
    [2000, 300_000, 3_600_000, 250],
  )
  t.equal(c.limits.bodyIdleTimeout, 3000)
  t.same(c.admin.address, { host: '::1', port: 9901 })
  t.same(issues(`${MINIMAL}drainTimeout: 10 seconds\n`), [{ path: 'drainTimeout', line: 6 }])
  t.same(issues(`${MINIMAL}admin: { address: "127.0.0.1:70000" }\n`), [{ path: 'admin.address', line: 6 }])
  t.same(issues(`${MINIMAL}admin: { address: "[not-ipv6]:1" }\n`), [{ path: 'admin.address', line: 6 }])
})

t.test('schema problems are all reported, each with its field and line', async (t) => {
  const found = issues(`inbound:
  - name: Public_1
    address: "0.0.0.0:15443"
    forwardTo: "ftp://127.0.0.1"
    authorize: { exact: "spiffe://example.org/a/../b" }
    colour: blue
limits: { maxHeaderCount: 0 }
`)
  t.same(found, [
    { path: 'inbound[0].colour', line: 6 },
    { path: 'inbound[0].name', line: 2 },
    { path: 'inbound[0].forwardTo', line: 4 },
    { path: 'inbound[0].authorize.exact', line: 5 },
    { path: 'limits.maxHeaderCount', line: 7 },
  ])
})

t.test('authorizers: exactly one kind, each validated', async (t) => {
  const auth = (a: string) =>
    issues(
      `inbound:\n  - name: p\n    address: "0.0.0.0:1"\n    forwardTo: "http://127.0.0.1:2"\n    authorize: ${a}\n`,
    )
  t.same(auth('{ any: true, exact: "spiffe://td/a" }'), [{ path: 'inbound[0].authorize', line: 5 }])
  t.same(auth('{ trustDomain: "Bad_TD" }'), [{ path: 'inbound[0].authorize.trustDomain', line: 5 }])
  t.same(auth('{ pattern: "spiffe://td/a*" }'), [{ path: 'inbound[0].authorize.pattern', line: 5 }])
  t.same(auth('{ oneOf: [] }'), [{ path: 'inbound[0].authorize.oneOf', line: 5 }])
  t.same(auth('{ any: false }'), [{ path: 'inbound[0].authorize.any', line: 5 }])
})

t.test('meaning: routes name upstreams, plaintext is opt-in, loopback rules, unique names', async (t) => {
  t.same(
    issues(`outbound:
  - name: egress
    address: "0.0.0.0:15001"
    routes:
      - upstream: tols
upstreams:
  tools: { url: "http://127.0.0.1:9000" }
  peer: { url: "http://127.0.0.1:9001", spiffe: { any: true } }
inbound:
  - name: egress
    address: "0.0.0.0:15443"
    forwardTo: "http://10.1.2.3:8080"
    authorize: { any: true }
`)
      .map((i) => i.path)
      .sort(),
    [
      'inbound[0].forwardTo',
      'outbound[0].address',
      'outbound[0].name',
      'outbound[0].routes[0].upstream',
      'upstreams.peer.url',
      'upstreams.tools.url',
    ],
  )
  const ok = parseConfig(
    `outbound:\n  - name: e\n    address: "127.0.0.1:1"\n    routes: [{ upstream: legacy }]\nupstreams:\n  legacy: { url: "http://127.0.0.1:9", allowPlaintext: true }\n`,
    'x.yaml',
    {},
  )
  t.equal(ok.upstreams.get('legacy')?.kind, 'plaintext')
  t.match(ok.warnings, [/legacy is plaintext/], 'plaintext is reported at start')
  t.same(
    issues('log: { level: info }\n').map((i) => i.path),
    ['(root)'],
    'at least one listener',
  )
})

t.test('YAML problems: syntax, duplicate keys, a non-mapping root', async (t) => {
  t.match(fullIssues('inbound: [\n'), [{ path: '(yaml)', line: 2, column: 1 }])
  t.match(fullIssues('inbound:\n  - name: p\n   address: x\n'), [{ path: '(yaml)', line: 3, column: 1 }])
  t.match(fullIssues(`${MINIMAL}drainTimeout: 1s\ndrainTimeout: 2s\n`), [
    { path: '(yaml)', line: 7, column: 1 },
  ])
  t.same(
    issues('- just\n- a list\n').map((i) => i.path),
    ['(root)'],
  )
})

t.test('environment overrides for deployment-specific values', async (t) => {
  const c = parseConfig(MINIMAL, 'x.yaml', {
    SVIDECAR_WORKLOAD_API_SOCKET: 'unix:///run/spire/agent.sock',
    SVIDECAR_ADMIN_ADDRESS: '0.0.0.0:9090',
    SVIDECAR_LISTENER_PUBLIC_ADDRESS: '0.0.0.0:8443',
  })
  t.equal(c.workloadApi.socket, 'unix:///run/spire/agent.sock')
  t.same(c.admin.address, { host: '0.0.0.0', port: 9090 })
  t.same(c.inbound[0]?.address, { host: '0.0.0.0', port: 8443 })
  t.same(
    issues(MINIMAL, { SVIDECAR_LISTENER_NOPE_ADDRESS: '1.2.3.4:5' }).map((i) => i.path),
    ['(root)'],
  )
  t.same(
    issues(MINIMAL, { SVIDECAR_ADMIN_ADDRESS: 'nope' }).map((i) => i.path),
    ['admin.address'],
  )
})

t.test('a bad value from an environment override names the variable, not a line of the file', async (t) => {
  const withAdmin = `${MINIMAL}admin: { address: "127.0.0.1:15000" }\n`
  t.same(fullIssues(withAdmin, { SVIDECAR_ADMIN_ADDRESS: 'nope' }), [
    {
      path: 'admin.address',
      env: 'SVIDECAR_ADMIN_ADDRESS',
      message: '"nope": expected host:port (an IPv6 host in brackets)',
    },
  ])
  t.match(fullIssues(MINIMAL, { SVIDECAR_WORKLOAD_API_SOCKET: 'unix://tmp/agent.sock' }), [
    { path: 'workloadApi.socket', env: 'SVIDECAR_WORKLOAD_API_SOCKET' },
  ])
  const [collision] = fullIssues(withAdmin, { SVIDECAR_LISTENER_PUBLIC_ADDRESS: '127.0.0.1:15000' })
  t.match(collision, { path: 'inbound[0].address', env: 'SVIDECAR_LISTENER_PUBLIC_ADDRESS' })
  t.equal(collision?.line, undefined, 'no file line for a value the file does not hold')
  try {
    parseConfig(withAdmin, 'test.yaml', { SVIDECAR_ADMIN_ADDRESS: 'nope' })
  } catch (err) {
    t.match((err as Error).message, /environment variable SVIDECAR_ADMIN_ADDRESS: admin\.address: "nope"/)
  }
  // The file's own bad value keeps its line.
  t.match(fullIssues(`workloadApi: { socket: "unix:rel.sock" }\n${MINIMAL}`), [
    { path: 'workloadApi.socket', line: 1 },
  ])
})

const LISTENERS = (admin: string, inbound: string, outbound: string) => `admin: { address: "${admin}" }
inbound:
  - name: public
    address: "${inbound}"
    forwardTo: "http://127.0.0.1:8080"
    authorize: { any: true }
outbound:
  - name: egress
    address: "${outbound}"
    allowNonLoopback: true
    routes: [{ upstream: u }]
upstreams:
  u: { url: "https://u.example" }
`

t.test('two listeners on one address are refused, wildcards included', async (t) => {
  const clash = (admin: string, inbound: string, outbound: string) =>
    issues(LISTENERS(admin, inbound, outbound)).map((i) => `${i.path}:${i.line}`)
  t.same(clash('127.0.0.1:15000', '127.0.0.1:15000', '127.0.0.1:15001'), ['inbound[0].address:4'])
  t.same(clash('127.0.0.1:15000', '0.0.0.0:15443', '127.0.0.1:15443'), ['outbound[0].address:9'])
  t.same(clash('127.0.0.1:15000', '[::]:15443', '127.0.0.1:15443'), ['outbound[0].address:9'], 'dual stack')
  t.same(clash('[::1]:15000', '[::1]:15443', '[::]:15443'), ['outbound[0].address:9'])
  t.same(clash('localhost:15000', '0.0.0.0:15000', '127.0.0.1:1'), ['inbound[0].address:4'])
  const fine: Array<[string, string, string]> = [
    ['127.0.0.1:0', '127.0.0.1:0', '127.0.0.1:0'],
    ['127.0.0.1:15000', '0.0.0.0:15443', '127.0.0.1:15001'],
    ['127.0.0.2:15000', '127.0.0.1:15000', '127.0.0.1:15001'],
    ['[::1]:15000', '0.0.0.0:15000', '127.0.0.1:15001'],
  ]
  for (const ok of fine) {
    t.doesNotThrow(() => parseConfig(LISTENERS(...ok), 'x.yaml', {}), ok.join(' '))
  }
})

t.test('caFile: missing, not PEM, a broken certificate, or on an upstream that ignores it', async (t) => {
  const dir = t.testdir({
    'ca.pem': DevCa.create({ trustDomain: 'example.org' }).bundlePem(),
    'not-pem.yaml': MINIMAL,
    'broken.pem': '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n',
  })
  const withCa = (file: string, extra = '') =>
    `${MINIMAL}upstreams:\n  api:\n    url: "https://api.example"\n    caFile: "${file}"\n${extra}`
  t.equal(
    parseConfig(withCa(join(dir, 'ca.pem')), 'x.yaml', {}).upstreams.get('api')?.caFile,
    join(dir, 'ca.pem'),
  )
  for (const [file, what] of [
    ['missing.pem', /cannot read ".*missing\.pem": ENOENT/],
    ['not-pem.yaml', /holds no PEM certificate/],
    ['broken.pem', /certificate 1 of 1 is not a valid X\.509 certificate/],
  ] as const) {
    t.match(
      fullIssues(withCa(join(dir, file))),
      [{ path: 'upstreams.api.caFile', line: 9, message: what }],
      file,
    )
  }
  t.match(
    fullIssues(
      `${MINIMAL}upstreams:\n  peer:\n    url: "https://p.example"\n    spiffe: { any: true }\n    caFile: "${join(dir, 'ca.pem')}"\n`,
    ),
    [{ path: 'upstreams.peer.caFile', message: /trust bundle/ }],
  )
})

t.test('peerIdHeader must not name a header HTTP already gives a meaning', async (t) => {
  const header = (name: string) =>
    `inbound:\n  - name: p\n    address: "0.0.0.0:1"\n    forwardTo: "http://127.0.0.1:2"\n    peerIdHeader: ${name}\n    authorize: { any: true }\n`
  for (const name of [
    'Host',
    'Content-Length',
    'transfer-encoding',
    'Connection',
    'Keep-Alive',
    'Upgrade',
    'TE',
    'Authorization',
    'Cookie',
    'Sec-WebSocket-Key',
    'x-svidecar-error',
  ]) {
    t.match(fullIssues(header(name)), [{ path: 'inbound[0].peerIdHeader', line: 5, column: 5 }], name)
  }
  t.equal(parseConfig(header('X-Peer-Id'), 'x.yaml', {}).inbound[0]?.peerIdHeader, 'x-peer-id')
})

t.test(
  'timeouts: zero where it breaks something, past what a Node timer holds, headers after request',
  async (t) => {
    for (const field of ['headersTimeout', 'idleTimeout', 'connectTimeout']) {
      t.same(
        issues(`${MINIMAL}limits: { ${field}: 0s }\n`),
        [{ path: `limits.${field}`, line: 6 }],
        `${field}: 0`,
      )
    }
    t.same(issues(`${MINIMAL}drainTimeout: 0\n`), [{ path: 'drainTimeout', line: 6 }])
    // 0 is the one way to say "wait for the Workload API for ever" (listeners stay up, not ready, refusing).
    t.equal(
      parseConfig(`${MINIMAL}workloadApi: { startupTimeout: 0ms }\n`, 'x.yaml', {}).workloadApi
        .startupTimeout,
      0,
    )
    t.equal(
      parseConfig(`${MINIMAL}limits: { requestTimeout: 0 }\n`, 'x.yaml', {}).limits.requestTimeout,
      0,
      '0 = no limit',
    )
    t.same(issues(`${MINIMAL}limits: { idleTimeout: 1000h }\n`), [{ path: 'limits.idleTimeout', line: 6 }])
    t.same(issues(`${MINIMAL}drainTimeout: 2147483648\n`), [{ path: 'drainTimeout', line: 6 }])
    t.equal(
      parseConfig(`${MINIMAL}limits: { idleTimeout: 24h }\n`, 'x.yaml', {}).limits.idleTimeout,
      86_400_000,
    )
    t.same(issues(`${MINIMAL}limits: { headersTimeout: 20s, requestTimeout: 10s }\n`), [
      { path: 'limits.headersTimeout', line: 6 },
    ])
    // What that last check guards against: node:http refuses such a server outright.
    t.throws(() => createServer({ headersTimeout: 20_000, requestTimeout: 10_000 }), {
      code: 'ERR_OUT_OF_RANGE',
    })
    t.doesNotThrow(() => createServer({ headersTimeout: 20_000, requestTimeout: 0 }).close())
  },
)

t.test('a route that an earlier route always takes first is unreachable', async (t) => {
  const routes = (...rs: string[]) =>
    `outbound:\n  - name: e\n    address: "127.0.0.1:1"\n    routes:\n${rs.map((r) => `      - ${r}\n`).join('')}upstreams:\n  a: { url: "https://a.example" }\n`
  const dead = (...rs: string[]) => issues(routes(...rs)).map((i) => `${i.path}:${i.line}`)
  t.same(dead('{ upstream: a }', '{ match: { pathPrefix: /v1 }, upstream: a }'), ['outbound[0].routes[1]:6'])
  t.same(dead('{ match: { pathPrefix: / }, upstream: a }', '{ match: { host: x }, upstream: a }'), [
    'outbound[0].routes[1]:6',
  ])
  t.same(
    dead('{ match: { pathPrefix: /v1/ }, upstream: a }', '{ match: { pathPrefix: /v1/chat }, upstream: a }'),
    ['outbound[0].routes[1]:6'],
  )
  t.same(
    dead(
      '{ match: { host: X.example }, upstream: a }',
      '{ match: { host: x.example, pathPrefix: /a }, upstream: a }',
    ),
    ['outbound[0].routes[1]:6'],
  )
  t.same(dead('{ match: { host: "mcp:8080" }, upstream: a }'), ['outbound[0].routes[0].match.host:5'])
  for (const ok of [
    ['{ match: { pathPrefix: /v1 }, upstream: a }', '{ match: { pathPrefix: /v10 }, upstream: a }'],
    ['{ match: { host: x }, upstream: a }', '{ upstream: a }'],
    ['{ match: { pathPrefix: /v1/chat }, upstream: a }', '{ match: { pathPrefix: /v1 }, upstream: a }'],
    ['{ match: { host: x }, upstream: a }', '{ match: { host: y }, upstream: a }'],
    ['{ match: { host: "[::1]" }, upstream: a }'],
  ]) {
    t.doesNotThrow(() => parseConfig(routes(...ok), 'x.yaml', {}), ok.join(' then '))
  }
})

t.test('meaning checks still run when a schema check failed elsewhere', async (t) => {
  const found = issues(`limits: { maxHeaderCount: 0 }
admin: { address: "127.0.0.1:15000" }
inbound:
  - name: bad_name
    address: "127.0.0.1:15000"
    forwardTo: "http://127.0.0.1:8080"
    authorize: { any: true }
  - name: public
    address: "127.0.0.1:15000"
    forwardTo: "http://127.0.0.1:8080"
    authorize: { any: true }
outbound:
  - name: egress
    address: "127.0.0.1:15001"
    routes: [{ upstream: tools }, { upstream: broken }, { upstream: nowhere }]
upstreams:
  broken: { url: "ftp://x" }
`)
  t.same(
    found.map((i) => `${i.path}:${i.line}`),
    [
      'inbound[0].name:4',
      'upstreams.broken.url:17',
      'limits.maxHeaderCount:1',
      'outbound[0].routes[0].upstream:15',
      'outbound[0].routes[2].upstream:15',
      'outbound[0].routes[1]:15',
      'outbound[0].routes[2]:15',
      'inbound[1].address:9',
    ],
  )
})

t.test('authorize: one kind or a list of kinds, for listeners and upstreams alike', async (t) => {
  const c = parseConfig(
    `inbound:
  - name: p
    address: "0.0.0.0:1"
    forwardTo: "http://127.0.0.1:2"
    authorize:
      - pattern: spiffe://example.org/ns/agents/**
      - trustDomain: partner.example
outbound:
  - name: e
    address: "127.0.0.1:3"
    routes: [{ upstream: peer }]
upstreams:
  peer:
    url: https://peer.example
    spiffe: [{ exact: spiffe://example.org/mcp }, { exact: spiffe://partner.example/mcp }]
`,
    'x.yaml',
    {},
  )
  const inbound = authorizerFromSpec(c.inbound[0]?.authorize as never)
  t.equal(inbound(SpiffeId.parse('spiffe://example.org/ns/agents/sa/a')), true)
  t.equal(inbound(SpiffeId.parse('spiffe://partner.example/anything')), true)
  t.equal(inbound(SpiffeId.parse('spiffe://example.org/ns/tools/sa/a')), false)
  t.match(
    inbound.description,
    /^any of \(pattern spiffe:\/\/example\.org\/ns\/agents\/\*\*; member of partner\.example\)$/,
  )
  const upstream = authorizerFromSpec(c.upstreams.get('peer')?.spiffe as never)
  t.equal(upstream(SpiffeId.parse('spiffe://partner.example/mcp')), true)
  t.equal(upstream(SpiffeId.parse('spiffe://example.org/other')), false)
  const auth = (a: string) =>
    issues(
      `inbound:\n  - name: p\n    address: "0.0.0.0:1"\n    forwardTo: "http://127.0.0.1:2"\n    authorize: ${a}\n`,
    )
  t.same(auth('[]'), [{ path: 'inbound[0].authorize', line: 5 }])
  t.same(auth('[{ any: true }, { trustDomain: Bad_TD }]'), [
    { path: 'inbound[0].authorize[1].trustDomain', line: 5 },
  ])
  t.same(auth('[[{ any: true }]]'), [{ path: 'inbound[0].authorize[0]', line: 5 }], 'no nested lists')
})

t.test('config files on disk: loadConfig reads what parseConfig checks', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'svidecar.yaml')
  writeFileSync(file, `${MINIMAL}limits: { connectTimeout: 0 }\n`)
  t.throws(() => loadConfig(file, {}), { code: 'SVD_CONFIG_INVALID' })
})

t.test('an unreadable file is its own error', async (t) => {
  t.throws(() => loadConfig('/nonexistent/svidecar.yaml', {}), { code: 'SVD_CONFIG_UNREADABLE' })
})

t.test("the README's configuration reference lists exactly the schema's fields", async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const section = /### Configuration reference\n[\s\S]*?\n(\| field \|[\s\S]*?)\n\n/.exec(readme)?.[1] ?? ''
  const documented = [...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1])
  t.ok(documented.length > 0, 'the section exists')
  t.same(documented, fieldPaths(SCHEMA), 'same fields, same order')
})

t.test('a malformed section is reported once, not again by the meaning checks', async (t) => {
  t.same(
    issues('inbound: { name: p }\n').map((i) => i.path),
    ['inbound'],
  )
  t.same(
    issues(
      'outbound:\n  - name: e\n    address: "127.0.0.1:1"\n    routes: [{ upstream: a }]\nupstreams: [a]\n',
    ).map((i) => i.path),
    ['upstreams'],
  )
  t.same(
    issues('inbound: []\n').map((i) => i.path),
    ['(root)'],
    'an empty list still needs a listener',
  )
})

t.test('policy: each engine takes its own settings, and only those', async (t) => {
  const paths = (yaml: string) => issues(`${MINIMAL}${yaml}\n`).map((i) => i.path)
  t.same(parseConfig(`${MINIMAL}policy: { file: p.yaml }\n`, 'x.yaml', {}).policy, {
    engine: 'builtin',
    file: 'p.yaml',
  })
  t.same(
    parseConfig(
      `${MINIMAL}policy: { engine: opa, opa: { url: "http://127.0.0.1:8181", package: a.b } }\n`,
      'x.yaml',
      {},
    ).policy,
    {
      engine: 'opa',
      opa: {
        url: 'http://127.0.0.1:8181',
        package: 'a.b',
        timeoutMs: 50,
        cacheEntries: 10_000,
        cacheTtlMs: 1000,
      },
    },
  )
  t.same(paths('policy: { engine: cedar }'), ['policy.file'], 'cedar needs its file')
  t.same(paths('policy: { engine: opa }'), ['policy.opa'], 'opa needs its server')
  t.same(
    paths('policy: { engine: opa, file: p.yaml, opa: { url: "http://o:1", package: p } }'),
    ['policy.file'],
    'opa decides in the server, from no file',
  )
  t.same(paths('policy: { file: p.yaml, schema: s.cedarschema, mode: audit }'), [
    'policy.schema',
    'policy.mode',
  ])
  t.same(paths('policy: { file: p.yaml, opa: { url: "http://o:1", package: p } }'), ['policy.opa'])
  t.same(paths('policy: { engine: rego, file: p.yaml }'), ['policy.engine'])
  t.same(paths('policy: { engine: opa, opa: { url: "http://u:p@o:1", package: "a..b" } }'), [
    'policy.opa.url',
    'policy.opa.package',
  ])
})

t.test('llm: lens routes and providers', async (t) => {
  const base = (
    routes: string,
    llm: string,
    upstreams = 'upstreams:\n  openai: { url: "https://api.openai.com" }\n',
  ) => `outbound:\n  - name: egress\n    address: "127.0.0.1:15001"\n    routes:\n${routes}${upstreams}${llm}`
  const ok = parseConfig(
    base(
      '      - { match: { pathPrefix: /v1 }, lens: llm }\n',
      'llm:\n  providers:\n    openai:\n      kind: openai\n      upstream: openai\n      credential: { env: OPENAI_API_KEY }\n',
    ),
    'test.yaml',
    {},
  )
  t.same(ok.outbound[0]?.routes, [{ pathPrefix: '/v1', lens: 'llm' }])
  t.same(ok.llm, {
    bodyLimit: 4 * 1024 * 1024,
    maxDepth: 64,
    unknownPaths: 'deny',
    providers: [
      {
        name: 'openai',
        kind: 'openai',
        upstream: 'openai',
        models: ['*'],
        credential: { env: 'OPENAI_API_KEY' },
      },
    ],
  })
  const paths = (routes: string, llm: string) => issues(base(routes, llm)).map((i) => i.path)
  t.same(
    paths('      - { lens: llm }\n', ''),
    ['outbound[0].routes[0].lens'],
    'lens: llm needs the llm section',
  )
  t.same(
    paths(
      '      - { upstream: openai, lens: llm }\n',
      'llm:\n  providers:\n    a: { kind: openai-compatible, upstream: openai }\n',
    ),
    ['outbound[0].routes[0]'],
    'an upstream and a lens',
  )
  t.same(paths('      - { match: { pathPrefix: /v1 } }\n', ''), ['outbound[0].routes[0]'], 'neither')
  t.same(
    paths(
      '      - { lens: llm }\n',
      'llm:\n  providers:\n    a: { kind: anthropic, upstream: nope, anthropicVersion: "2023-06-01" }\n    b: { kind: openai, upstream: openai, anthropicVersion: x, credential: { file: /k } }\n    c: { kind: openai-compatible, upstream: openai, credential: { env: "1BAD" } }\n',
    ),
    [
      'llm.providers.c.credential.env',
      'llm.providers.a.upstream',
      'llm.providers.a.credential',
      'llm.providers.b.anthropicVersion',
    ],
  )
  t.same(
    paths(
      '      - { lens: llm }\n',
      'llm:\n  providers:\n    a: { kind: openai, upstream: openai, credential: { file: /k, env: K } }\n',
    ),
    ['llm.providers.a.credential'],
    'a file or a variable, not both',
  )
})
