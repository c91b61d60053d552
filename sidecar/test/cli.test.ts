// The `svidecar` command as a user meets it: --version, exit codes, and what
// `config check` prints for a file that would break `svidecar run`.
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const bin = fileURLToPath(new URL('../bin/svidecar.js', import.meta.url))
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string
}

/** Runs the CLI without any SVIDECAR_* or SPIFFE_* variable of this shell, plus `env`. */
function svidecar(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('SVIDECAR_') && !k.startsWith('SPIFFE_')),
  )
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--conditions=svidecar-source', bin, ...args],
      { env: { ...clean, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
        resolve({ code, stdout, stderr })
      },
    )
  })
}

t.test('--version prints the package version', async (t) => {
  for (const flag of ['--version', '-V']) {
    const r = await svidecar([flag])
    t.equal(r.code, 0, flag)
    t.equal(r.stdout, `svidecar ${pkg.version}\n`, flag)
  }
})

t.test('every usage error exits 2 and says what was wrong on stderr', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /no command given/],
    [['nonsense'], /unknown command "nonsense"/],
    [['run'], /--config FILE is required/],
    [['run', '--bogus'], /svidecar run: Unknown option '--bogus'/],
    [['run', '--config'], /svidecar run: Option '-c, --config <value>' argument missing/],
    [['config'], /Usage: svidecar config check FILE/],
    [['config', 'frob'], /unknown subcommand "frob"/],
    [['config', 'check'], /expected one FILE/],
    [['config', 'check', '--nope', 'x.yaml'], /svidecar config: Unknown option '--nope'/],
    [['demo', '--ttl', 'x'], /--ttl must be a number of seconds/],
    [['demo', '--rotations', 'two'], /--rotations must be a whole number/],
  ]
  for (const [args, says] of cases) {
    const r = await svidecar(args)
    t.equal(r.code, 2, `svidecar ${args.join(' ')}`)
    t.match(r.stderr, says, `svidecar ${args.join(' ')}`)
  }
  const help = await svidecar(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Exit codes: 0 success, 1 failure .*, 2 usage error/)
})

t.test('config check on a valid file: exit 0, counts in words', async (t) => {
  const file = join(t.testdir(), 'ok.yaml')
  writeFileSync(
    file,
    `outbound:
  - name: egress
    address: 127.0.0.1:15001
    routes: [{ upstream: api }]
upstreams:
  api: { url: "https://api.example" }
`,
  )
  const r = await svidecar(['config', 'check', file])
  t.equal(r.code, 0)
  t.equal(r.stdout, `${file}: ok (0 inbound, 1 outbound, 1 upstream)\n`, 'one upstream, not "1 upstreams"')
})

t.test(
  'config check on a file that would break at run time: exit 1, each problem at file:line:col',
  async (t) => {
    const dir = t.testdir({ 'ca.yaml': 'not: a certificate\n' })
    const file = join(dir, 'bad.yaml')
    writeFileSync(
      file,
      `admin:
  address: 127.0.0.1:15000
limits:
  headersTimeout: 0s
inbound:
  - name: public
    address: 0.0.0.0:15000
    forwardTo: http://127.0.0.1:8080
    peerIdHeader: Content-Length
    authorize: { any: true }
  - name: agents
    address: 0.0.0.0:15443
    forwardTo: http://127.0.0.1:8080
    authorize: { any: true }
outbound:
  - name: egress
    address: 127.0.0.1:15443
    routes:
      - upstream: api
      - match: { pathPrefix: /v1 }
        upstream: api
upstreams:
  api:
    url: https://api.example.com
    caFile: ${join(dir, 'ca.yaml')}
`,
    )
    const r = await svidecar(['config', 'check', file])
    t.equal(r.code, 1)
    t.equal(r.stdout, '')
    const lines = r.stderr.split('\n')
    t.match(lines[0], /^SVD_CONFIG_INVALID: 5 problems in /)
    for (const [where, field, what] of [
      ['4:3', 'limits.headersTimeout', /must be longer than 0/],
      ['9:5', 'inbound[0].peerIdHeader', /"Content-Length" has a meaning in HTTP \(it frames the body\)/],
      ['25:5', 'upstreams.api.caFile', /ca\.yaml" holds no PEM certificate/],
      ['20:9', 'outbound[0].routes[1]', /unreachable: route 0 \(matches everything\)/],
      [
        '17:5',
        'outbound[0].address',
        /^127\.0\.0\.1:15443 collides with inbound listener agents on 0\.0\.0\.0:15443/,
      ],
    ] as const) {
      const line = lines.find((l) => l.includes(`${file}:${where}: ${field}: `))
      t.ok(line, `${where} ${field}`)
      t.match(line?.split(`${field}: `)[1], what, field)
    }
  },
)

t.test('config check: a YAML syntax error has its line and column', async (t) => {
  const file = join(t.testdir(), 'broken.yaml')
  writeFileSync(file, 'inbound:\n  - name: public\n    address: [0.0.0.0:15443\n')
  const r = await svidecar(['config', 'check', file])
  t.equal(r.code, 1)
  t.match(r.stderr, new RegExp(`${file.replaceAll('.', '\\.')}:4:1: \\(yaml\\): `))
})

t.test('config check: a bad value from the environment names the variable', async (t) => {
  const file = join(t.testdir(), 'ok.yaml')
  writeFileSync(
    file,
    'inbound:\n  - name: public\n    address: 0.0.0.0:15443\n    forwardTo: http://127.0.0.1:8080\n    authorize: { any: true }\n',
  )
  const r = await svidecar(['config', 'check', file], { SVIDECAR_LISTENER_PUBLIC_ADDRESS: '127.0.0.1:15000' })
  t.equal(r.code, 1)
  t.match(
    r.stderr,
    /environment variable SVIDECAR_LISTENER_PUBLIC_ADDRESS: inbound\[0\]\.address: 127\.0\.0\.1:15000 collides with the admin listener/,
  )
})

t.test('run: an unreadable or invalid config exits 1 with its code, before anything starts', async (t) => {
  const missing = await svidecar(['run', '--config', '/nonexistent/svidecar.yaml'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /^SVD_CONFIG_UNREADABLE: cannot read \/nonexistent\/svidecar\.yaml: ENOENT/)
  const dir = t.testdir()
  const file = join(dir, 'bad.yaml')
  writeFileSync(
    file,
    `outbound:\n  - name: e\n    address: 127.0.0.1:0\n    routes: [{ upstream: api }]\nupstreams:\n  api:\n    url: https://api.example\n    caFile: ${join(dir, 'missing.pem')}\n`,
  )
  const bad = await svidecar(['run', '--config', file])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /:8:5: upstreams\.api\.caFile: cannot read ".*missing\.pem": ENOENT/)
})

t.test('a policy file that does not load: config check and run both exit 1 and say why', async (t) => {
  const dir = t.testdir()
  const policy = join(dir, 'policy.yaml')
  writeFileSync(policy, 'version: 1\nrules:\n  - id: a\n    efect: allow\n')
  const file = join(dir, 'svidecar.yaml')
  writeFileSync(
    file,
    `admin: { address: "127.0.0.1:0" }
outbound:
  - name: egress
    address: 127.0.0.1:0
    routes: [{ upstream: api }]
upstreams:
  api: { url: "https://api.example" }
policy: { file: "${policy}" }
`,
  )
  const check = await svidecar(['config', 'check', file])
  t.equal(check.code, 1)
  t.match(check.stderr, /^SVD_POLICY_INVALID: /)
  t.match(check.stderr, /policy\.yaml:4:5: rules\[0\]\.efect/)
  // No Workload API is needed to see it: the policy loads before anything starts.
  const run = await svidecar(['run', '--config', file])
  t.equal(run.code, 1, 'not a sidecar that silently denies everything')
  t.match(run.stderr, /^SVD_POLICY_INVALID: /)
  t.match(run.stderr, /rules\[0\]\.efect/)

  writeFileSync(
    policy,
    'version: 1\nrules:\n  - id: a\n    effect: allow\n    subjects: [spiffe://example.org/a]\n    resources: [{ kind: http.route, path: /x }]\n',
  )
  const ok = await svidecar(['config', 'check', file])
  t.equal(ok.code, 0)
  t.match(ok.stdout, /ok \(0 inbound, 1 outbound, 1 upstream, policy .*policy\.yaml with 1 rule\)/)
  const missing = join(dir, 'absent.yaml')
  writeFileSync(file, readFileSync(file, 'utf8').replace(policy, missing))
  const gone = await svidecar(['config', 'check', file])
  t.equal(gone.code, 1)
  t.match(gone.stderr, /^SVD_POLICY_UNREADABLE: /)
})
