// What a peer-sidecar upstream sees in the ClientHello. SNI names the server
// the client means (RFC 6066 §3), so it is the upstream's configured host
// name, never an IP literal (which §3 forbids) and never the Host the local
// app happened to send: that is the app's text, sent in the clear, and undici
// closes a kept-alive connection whenever a request's server name differs
// from the connection's ("servername changed"), so an app alternating Host
// values paid a new handshake per request. Real sockets, real OpenSSL.
import { once } from 'node:events'
import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { DevWorkloadApi } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { matchId } from 'workload-api-client'
import { parseConfig } from '../src/config/index.ts'
import { Identity } from '../src/identity/identity.ts'
import { createLogger } from '../src/observe/log.ts'
import { Sidecar } from '../src/sidecar.ts'
import { tlsParameters } from '../src/tls/profiles.ts'
import { ServerTls } from '../src/tls/server-tls.ts'

const AGENT = 'spiffe://example.org/agent'
const MCP = 'spiffe://example.org/mcp'
const quick = () => ({ next: () => 50, reset() {} })

/** A peer sidecar's inbound TLS (ServerTls) that records each request's SNI and counts handshakes. */
async function peer(t: Test, identity: Identity) {
  const tls = new ServerTls(identity, {
    listener: 'peer',
    authorizer: matchId(AGENT),
    params: tlsParameters('intermediate', 'TLSv1.2'),
    handshakeTimeoutMs: 10_000,
  })
  const sni: (string | false)[] = []
  let handshakes = 0
  const server = createHttpsServer(tls.serverOptions(), (req, res) => {
    sni.push((req.socket as TLSSocket & { servername: string | false }).servername)
    res.end('ok')
  })
  tls.attach(server)
  server.on('secureConnection', () => handshakes++)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    tls.close()
    server.closeAllConnections()
    server.close()
  })
  return { port: (server.address() as AddressInfo).port, sni, handshakes: () => handshakes }
}

function get(port: number, host: string, agent: HttpAgent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', headers: { host }, agent }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test(
  'outbound to a peer sidecar: SNI is the upstream URL’s host name, one connection whatever Host the app sends',
  async (t) => {
    const api = await DevWorkloadApi.start({
      workloads: [
        { spiffeId: AGENT, hint: 'agent' },
        { spiffeId: MCP, hint: 'mcp' },
      ],
    })
    t.teardown(() => api.close())
    const mcp = Identity.start({ socket: api.endpoint, hint: 'mcp', backoff: quick })
    t.teardown(() => mcp.close())
    await mcp.waitReady(5000)
    const byName = await peer(t, mcp)
    const byIp = await peer(t, mcp)
    const sidecar = await Sidecar.start(
      parseConfig(
        `workloadApi: { socket: "${api.endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
outbound:
  - name: named
    address: "127.0.0.1:0"
    routes: [{ upstream: named }]
  - name: literal
    address: "127.0.0.1:0"
    routes: [{ upstream: literal }]
upstreams:
  named: { url: "https://localhost:${byName.port}", spiffe: { exact: "${MCP}" } }
  literal: { url: "https://127.0.0.1:${byIp.port}", spiffe: { exact: "${MCP}" } }
`,
        'agent.yaml',
        {},
      ),
      {
        identity: { backoff: quick },
        logger: createLogger({ level: 'error', stream: { write: () => true } }),
      },
    )
    t.teardown(() => sidecar.destroy())
    await sidecar.identity.waitReady(5000)
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => agent.destroy())
    const hosts = ['app.example', 'other.example:8080', '10.1.2.3', 'localhost', 'app.example']
    for (const [listener, upstream, expected] of [
      ['named', byName, 'localhost'],
      ['literal', byIp, false],
    ] as const) {
      const port = sidecar.addresses.outbound[listener]?.port ?? 0
      for (const host of hosts) t.equal(await get(port, host, agent), 200, `${listener}: Host ${host}`)
      t.same(
        upstream.sni,
        hosts.map(() => expected),
        expected === false ? 'no SNI for an IP-literal upstream' : 'SNI: the configured host name',
      )
      t.equal(upstream.handshakes(), 1, `${listener}: one kept-alive connection`)
    }
  },
)
