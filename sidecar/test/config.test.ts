// The config file: schema, meaning, line numbers, environment overrides, and the shipped examples.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { type ConfigError, loadConfig, parseConfig } from '../src/config/index.ts'

const MINIMAL = `inbound:
  - name: public
    address: "0.0.0.0:15443"
    forwardTo: "http://127.0.0.1:8080"
    authorize: { any: true }
`

function issues(text: string, env: NodeJS.ProcessEnv = {}): { path: string; line?: number }[] {
  try {
    parseConfig(text, 'test.yaml', env)
  } catch (err) {
    if ((err as ConfigError).code !== 'SVD_CONFIG_INVALID') throw err
    return (err as ConfigError).issues.map((i) => ({
      path: i.path,
      ...(i.line === undefined ? {} : { line: i.line }),
    }))
  }
  throw new Error('expected a ConfigError')
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
  t.equal(issues('inbound: [\n')[0]?.path, '(yaml)')
  t.equal(issues(`${MINIMAL}drainTimeout: 1s\ndrainTimeout: 2s\n`)[0]?.path, '(yaml)')
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

t.test('an unreadable file is its own error', async (t) => {
  t.throws(() => loadConfig('/nonexistent/svidecar.yaml', {}), { code: 'SVD_CONFIG_UNREADABLE' })
})
