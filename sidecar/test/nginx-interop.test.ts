// mTLS interop with nginx (Debian's, OpenSSL 3) as a peer nobody here wrote,
// both ways, TLS 1.3 and 1.2, SVIDs issued through an intermediate CA as
// SPIRE with an UpstreamAuthority issues them:
// - svidecar outbound → nginx with ssl_verify_client against the bundle;
// - nginx proxy_pass with proxy_ssl_certificate → svidecar inbound → app,
//   its second request a resumed session (proxy_ssl_session_reuse), which
//   must still carry the peer's SPIFFE ID to the app.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer as createNetServer } from 'node:net'
import { join } from 'node:path'
import { DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { parseConfig } from '../src/config/index.ts'
import { on, type TlsHandshakeEvent } from '../src/observe/events.ts'
import { createLogger } from '../src/observe/log.ts'
import { Sidecar } from '../src/sidecar.ts'
import { EchoApp } from './helpers/echo-app.ts'

const AGENT = 'spiffe://example.org/agent'
const NGINX = 'spiffe://example.org/nginx'
const quick = () => ({ next: () => 50, reset() {} })

async function freePort(): Promise<number> {
  const server = createNetServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise((r) => server.close(r))
  return port
}

function nginxBinary(): string {
  for (const candidate of ['nginx', '/usr/sbin/nginx']) {
    try {
      execFileSync(candidate, ['-v'], { stdio: 'ignore' })
      return candidate
    } catch {}
  }
  throw new Error('nginx is missing: apt-get install -y nginx (test/harness/debian.ts installs it)')
}

async function get(url: string): Promise<{ status: number; body: string; peer: string | null }> {
  const res = await fetch(url)
  return { status: res.status, body: await res.text(), peer: res.headers.get('x-seen-peer') }
}

t.test('mTLS with nginx both ways, TLS 1.3 and 1.2, SVIDs through an intermediate CA', async (t: Test) => {
  const api = await DevWorkloadApi.start({
    intermediates: 1,
    workloads: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: NGINX, hint: 'nginx' },
    ],
  })
  t.teardown(() => api.close())
  const app = await EchoApp.start()
  t.teardown(() => app.close())
  const ports = { tls13: await freePort(), tls12: await freePort(), proxy: await freePort() }
  const sidecar = await Sidecar.start(
    parseConfig(
      `workloadApi: { socket: "${api.endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
inbound:
  - name: ingress
    address: "127.0.0.1:0"
    forwardTo: ${app.url}
    peerIdHeader: x-spiffe-id
    authorize: { exact: "${NGINX}" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - { match: { pathPrefix: /tls12 }, upstream: nginx12 }
      - { upstream: nginx13 }
upstreams:
  nginx13: { url: "https://127.0.0.1:${ports.tls13}", spiffe: { exact: "${NGINX}" } }
  nginx12: { url: "https://127.0.0.1:${ports.tls12}", spiffe: { exact: "${NGINX}" } }
`,
      'sidecar.yaml',
      {},
    ),
    { identity: { backoff: quick }, logger: createLogger({ level: 'error', stream: { write: () => true } }) },
  )
  t.teardown(() => sidecar.destroy())
  await sidecar.identity.waitReady(5000)
  const inboundPort = sidecar.addresses.inbound.ingress?.port
  const egress = `http://127.0.0.1:${sidecar.addresses.outbound.egress?.port}`

  const svid = api.currentSvid(NGINX)
  if (svid === undefined) throw new Error('no nginx SVID')
  const dir = t.testdir()
  mkdirSync(join(dir, 'tmp'))
  writeFileSync(join(dir, 'svid.pem'), svid.certChainPem)
  writeFileSync(join(dir, 'svid.key'), svid.keyPem)
  writeFileSync(join(dir, 'bundle.pem'), api.bundlePem())
  const server = (port: number, protocols: string) => `
    server {
      listen 127.0.0.1:${port} ssl;
      ssl_certificate ${dir}/svid.pem;
      ssl_certificate_key ${dir}/svid.key;
      ssl_protocols ${protocols};
      ssl_client_certificate ${dir}/bundle.pem;
      ssl_verify_client on;
      ssl_verify_depth 3;
      location / { return 200 "$ssl_client_verify $ssl_protocol"; }
    }`
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  ${server(ports.tls13, 'TLSv1.3')}
  ${server(ports.tls12, 'TLSv1.2')}
  server {
    listen 127.0.0.1:${ports.proxy};
    proxy_ssl_certificate ${dir}/svid.pem;
    proxy_ssl_certificate_key ${dir}/svid.key;
    proxy_ssl_session_reuse on;
    # The sidecar's SVID names no DNS host; trust is the sidecar's check of nginx here.
    proxy_ssl_verify off;
    location /tls13/ { proxy_ssl_protocols TLSv1.3; proxy_pass https://127.0.0.1:${inboundPort}/; }
    location /tls12/ { proxy_ssl_protocols TLSv1.2; proxy_pass https://127.0.0.1:${inboundPort}/; }
  }
}
`,
  )
  const nginx: ChildProcess = spawn(nginxBinary(), ['-p', dir, '-c', join(dir, 'nginx.conf')], {
    stdio: 'ignore',
  })
  t.teardown(() => nginx.kill('SIGKILL'))
  const deadline = Date.now() + 15_000
  for (;;) {
    const up = await fetch(`http://127.0.0.1:${ports.proxy}/`).then(
      () => true,
      () => false,
    )
    if (up) break
    if (Date.now() > deadline)
      throw new Error(`nginx did not start: ${readFileSync(join(dir, 'error.log'), 'utf8')}`)
    await new Promise((r) => setTimeout(r, 50))
  }

  for (const [path, protocol] of [
    ['/', 'TLSv1.3'],
    ['/tls12', 'TLSv1.2'],
  ] as const) {
    for (let i = 0; i < 2; i++) {
      t.same(
        await get(`${egress}${path}`),
        { status: 200, body: `SUCCESS ${protocol}`, peer: null },
        `svidecar → nginx ${protocol}: nginx verified our SVID`,
      )
    }
  }
  const handshakes: TlsHandshakeEvent[] = []
  t.teardown(on('tlsHandshake', (e) => handshakes.push(e)))
  for (const protocol of ['tls13', 'tls12']) {
    const from = handshakes.length
    for (let i = 0; i < 3; i++) {
      const res = await get(`http://127.0.0.1:${ports.proxy}/${protocol}/echo`)
      t.equal(res.status, 200, `nginx → svidecar ${protocol} #${i}`)
      t.equal(res.peer, NGINX, `nginx → svidecar ${protocol} #${i}: the app saw nginx's SPIFFE ID`)
    }
    const inbound = handshakes.slice(from).filter((e) => e.direction === 'inbound')
    t.ok(
      inbound.some((e) => e.resumed && e.peerId === NGINX),
      `nginx → svidecar ${protocol}: a resumed session, still verified as nginx`,
    )
  }
})
