// TLS profiles probed from outside with OpenSSL's own tools (Debian `openssl`):
// `openssl s_client` against inbound listeners of each profile, and upstreams of
// each profile against a TLS 1.2-only `openssl s_server`. A refusal must come
// from the sidecar: the server-side probes also check the refusal it published.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { DevCa, DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { parseConfig } from '../src/config/index.ts'
import { on, type TlsRejectedEvent } from '../src/observe/events.ts'
import { createLogger } from '../src/observe/log.ts'
import { Sidecar } from '../src/sidecar.ts'
import { EchoApp } from './helpers/echo-app.ts'
import { AGENT, MCP } from './helpers/mesh.ts'

const quick = () => ({ next: () => 50, reset() {} })
const quiet = createLogger({ level: 'error', stream: { write: () => true } })
const events: TlsRejectedEvent[] = []
on('tlsRejected', (e) => events.push(e))

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

interface Probe {
  status: number | null
  protocol: string | undefined
  cipher: string | undefined
  stdout: string
}

/** One `openssl s_client` handshake; on success it sends one request and reads the answer. */
function sClient(port: number, files: Record<'cert' | 'key' | 'ca', string>, args: string[]): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${port}`,
        '-cert',
        files.cert,
        '-key',
        files.key,
        '-CAfile',
        files.ca,
        '-ign_eof',
        ...args,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    )
    let stdout = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.resume()
    child.on('error', reject)
    child.stdin.end('GET /echo-profile HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n')
    child.on('close', (status) => {
      const m = /New, (\S+), Cipher is (\S+)/.exec(stdout)
      resolve({
        status,
        protocol: m?.[1]?.replace(/,$/, ''),
        cipher: m?.[2] === '(NONE)' ? undefined : m?.[2],
        stdout,
      })
    })
  })
}

async function freePort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const { port } = s.address() as { port: number }
  await new Promise((r) => s.close(r))
  return port
}

/** `openssl s_server -www` presenting `cert`, limited by `args` (e.g. TLS 1.2 only). */
async function sServer(t: Test, cert: string, key: string, args: string[]): Promise<number> {
  const port = await freePort()
  const child: ChildProcess = spawn(
    'openssl',
    ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', cert, '-key', key, '-www', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  t.teardown(() => child.kill('SIGKILL'))
  let out = ''
  child.stdout?.on('data', (d) => {
    out += d
  })
  child.stderr?.on('data', (d) => {
    out += d
  })
  const failed = new Promise<never>((_, reject) => {
    child.on('error', reject)
    child.on('exit', (code) => reject(new Error(`openssl s_server exited (${code}): ${out}`)))
  })
  await Promise.race([until(() => out.includes('ACCEPT'), 'openssl s_server'), failed])
  return port
}

async function setup(t: Test) {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp' },
    ],
  })
  t.teardown(() => api.close())
  const app = await EchoApp.start()
  t.teardown(() => app.close())
  const agentSvid = api.ca.issueX509Svid({ spiffeId: AGENT })
  // Also names localhost, so it can stand in for an external HTTPS API (hostname-checked) as well.
  const mcpSvid = api.ca.issueX509Svid({ spiffeId: MCP, dnsNames: ['localhost'] })
  const dir = t.testdir()
  const files = {
    cert: join(dir, 'agent.pem'),
    key: join(dir, 'agent.key'),
    ca: join(dir, 'ca.pem'),
    serverCert: join(dir, 'mcp.pem'),
    serverKey: join(dir, 'mcp.key'),
  }
  writeFileSync(files.cert, agentSvid.certChainPem)
  writeFileSync(files.key, agentSvid.keyPem)
  writeFileSync(files.ca, api.bundlePem())
  writeFileSync(files.serverCert, mcpSvid.certChainPem)
  writeFileSync(files.serverKey, mcpSvid.keyPem)
  return { api, app, files }
}

t.test('inbound listeners refuse TLS 1.0/1.1, CBC and non-AEAD suites; modern refuses TLS 1.2', async (t) => {
  const { api, app, files } = await setup(t)
  const server = await Sidecar.start(
    parseConfig(
      `workloadApi: { socket: "${api.endpoint}", hint: mcp }
admin: { address: "127.0.0.1:0" }
inbound:
  - name: std
    address: "127.0.0.1:0"
    forwardTo: "${app.url}"
    authorize: { exact: "${AGENT}" }
  - name: strict
    address: "127.0.0.1:0"
    forwardTo: "${app.url}"
    authorize: { exact: "${AGENT}" }
    tls: { profile: modern }
`,
      'server.yaml',
      {},
    ),
    { identity: { backoff: quick }, logger: quiet },
  )
  t.teardown(() => server.destroy())
  await server.identity.waitReady(5000)
  const port = (name: string) => server.addresses.inbound[name]?.port ?? 0
  // DEFAULT@SECLEVEL=0 lets the local OpenSSL offer what its own configuration would refuse to send.
  const legacy = ['-cipher', 'DEFAULT@SECLEVEL=0']
  const TLS13 = /^TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/
  const cases: [string, string[], string | RegExp | undefined, string | undefined][] = [
    ['std', ['-tls1', ...legacy], undefined, 'PROTOCOL_VERSION'],
    ['std', ['-tls1_1', ...legacy], undefined, 'PROTOCOL_VERSION'],
    ['std', ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA'], undefined, 'NO_SHARED_CIPHER'],
    ['std', ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA256'], undefined, 'NO_SHARED_CIPHER'],
    ['std', ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-SHA384'], undefined, 'NO_SHARED_CIPHER'],
    ['std', ['-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256'], undefined, 'NO_SHARED_CIPHER'],
    [
      'std',
      ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'],
      'ECDHE-ECDSA-AES128-GCM-SHA256',
      undefined,
    ],
    [
      'std',
      ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-GCM-SHA384'],
      'ECDHE-ECDSA-AES256-GCM-SHA384',
      undefined,
    ],
    [
      'std',
      ['-tls1_2', '-cipher', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
      'ECDHE-ECDSA-CHACHA20-POLY1305',
      undefined,
    ],
    ['std', ['-tls1_3'], TLS13, undefined],
    ['strict', ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'], undefined, 'PROTOCOL_VERSION'],
    ['strict', ['-tls1_3'], TLS13, undefined],
  ]
  for (const [listener, args, accepted, reason] of cases) {
    const what = `${listener} ${args.join(' ')}`
    const from = events.length
    const seen = app.seen.length
    const probe = await sClient(port(listener), files, args)
    if (accepted !== undefined) {
      t.match(probe.cipher, accepted, `${what}: accepted with ${accepted}`)
      t.match(probe.stdout, /HTTP\/1\.1 200/, `${what}: the request went through`)
      t.equal(app.seen.length, seen + 1)
    } else {
      t.equal(probe.cipher, undefined, `${what}: refused`)
      t.equal(app.seen.length, seen, `${what}: nothing reached the app`)
      await until(
        () => events.slice(from).some((e) => e.listener === listener),
        `${what}: the refusal to be published`,
      )
      t.match(
        events.slice(from).filter((e) => e.listener === listener),
        [{ direction: 'inbound', reason, code: 'SVD_TLS_HANDSHAKE_FAILED' }],
        `${what}: refused by the sidecar (${reason})`,
      )
    }
  }
})

t.test(
  'upstream profiles: modern refuses a TLS 1.2-only server; intermediate refuses a CBC-only one',
  async (t) => {
    const { api, files } = await setup(t)
    const tls12 = await sServer(t, files.serverCert, files.serverKey, ['-tls1_2'])
    const cbcOnly = await sServer(t, files.serverCert, files.serverKey, [
      '-tls1_2',
      '-cipher',
      'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA',
    ])
    // A TLS 1.2 server that demands a client certificate from a CA that is not ours: it answers with an alert.
    const strangerCa = join(t.testdirName, 'stranger-ca.pem')
    writeFileSync(strangerCa, DevCa.create({ trustDomain: 'example.org' }).bundlePem())
    const distrusting = await sServer(t, files.serverCert, files.serverKey, [
      '-tls1_2',
      '-Verify',
      '1',
      '-verify_return_error',
      '-CAfile',
      strangerCa,
    ])
    const agent = await Sidecar.start(
      parseConfig(
        `workloadApi: { socket: "${api.endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - { match: { pathPrefix: /intermediate }, upstream: peer-intermediate }
      - { match: { pathPrefix: /modern }, upstream: peer-modern }
      - { match: { pathPrefix: /cbc }, upstream: peer-cbc }
      - { match: { pathPrefix: /distrusting }, upstream: peer-distrusting }
      - { match: { pathPrefix: /api-intermediate }, upstream: api-intermediate }
      - { match: { pathPrefix: /api-modern }, upstream: api-modern }
upstreams:
  peer-intermediate: { url: "https://127.0.0.1:${tls12}", spiffe: { exact: "${MCP}" } }
  peer-modern: { url: "https://127.0.0.1:${tls12}", spiffe: { exact: "${MCP}" }, tls: { profile: modern } }
  peer-cbc: { url: "https://127.0.0.1:${cbcOnly}", spiffe: { exact: "${MCP}" } }
  api-intermediate: { url: "https://localhost:${tls12}", caFile: "${files.ca}" }
  api-modern: { url: "https://localhost:${tls12}", caFile: "${files.ca}", tls: { profile: modern } }
  peer-distrusting: { url: "https://127.0.0.1:${distrusting}", spiffe: { exact: "${MCP}" } }
`,
        'agent.yaml',
        {},
      ),
      { identity: { backoff: quick }, logger: quiet },
    )
    t.teardown(() => agent.destroy())
    await agent.identity.waitReady(5000)
    const out = `http://127.0.0.1:${agent.addresses.outbound.egress?.port}`

    const ok = await fetch(`${out}/intermediate`)
    t.equal(ok.status, 200, 'the TLS 1.2 server is fine for the intermediate profile (control)')
    await ok.text()

    const from = events.length
    const modern = await fetch(`${out}/modern`)
    t.equal(modern.status, 502)
    t.equal(modern.headers.get('x-svidecar-error'), 'SVD_UPSTREAM_TLS_FAILED')
    await until(() => events.slice(from).some((e) => e.listener === 'peer-modern'), 'the refusal event')
    t.match(
      events.slice(from).filter((e) => e.listener === 'peer-modern'),
      [{ direction: 'outbound', reason: 'PROTOCOL_VERSION', code: 'SVD_UPSTREAM_TLS_FAILED' }],
    )

    const cbc = await fetch(`${out}/cbc`)
    t.equal(cbc.status, 502, 'a server offering only CBC suites is refused')
    t.equal(cbc.headers.get('x-svidecar-error'), 'SVD_UPSTREAM_TLS_FAILED')

    const apiOk = await fetch(`${out}/api-intermediate`)
    t.equal(apiOk.status, 200, 'an HTTPS API on TLS 1.2 is fine for the intermediate profile (control)')
    await apiOk.text()
    const from3 = events.length
    const apiModern = await fetch(`${out}/api-modern`)
    t.equal(apiModern.status, 502, 'an HTTPS API upstream with the modern profile refuses TLS 1.2')
    t.equal(apiModern.headers.get('x-svidecar-error'), 'SVD_UPSTREAM_TLS_FAILED')
    await until(() => events.slice(from3).some((e) => e.listener === 'api-modern'), 'the refusal event')
    t.match(
      events.slice(from3).filter((e) => e.listener === 'api-modern'),
      [{ direction: 'outbound', reason: 'PROTOCOL_VERSION', code: 'SVD_UPSTREAM_TLS_FAILED' }],
    )

    const from2 = events.length
    const distrusted = await fetch(`${out}/distrusting`)
    t.equal(distrusted.status, 502, 'an upstream that refuses our certificate')
    t.equal(distrusted.headers.get('x-svidecar-error'), 'SVD_UPSTREAM_TLS_FAILED')
    await until(() => events.slice(from2).some((e) => e.listener === 'peer-distrusting'), 'the refusal event')
    t.match(
      events.slice(from2).filter((e) => e.listener === 'peer-distrusting'),
      [{ direction: 'outbound', reason: 'PEER_REFUSED', detail: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' }],
      'is counted as the peer refusing us, with the alert it sent',
    )
  },
)
