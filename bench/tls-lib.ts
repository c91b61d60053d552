/**
 * The library's SPIFFE mTLS helpers against plain Node/undici mTLS with the
 * same certificates, measured as process CPU time (user + system) per
 * operation, both ends in this process:
 *
 * - warm: `fetch` on one kept-alive connection, spiffeDispatcher vs undici's
 *   Agent with `connect: { key, cert, ca }` (target: at most 5 % more);
 * - handshake: a new connection per operation, SpiffeTlsClient.connect to
 *   a SpiffeTlsServer vs tls.connect to a tls server with requestCert and
 *   rejectUnauthorized (target: at most 10 % more). The SPIFFE client resumes
 *   sessions within one SVID generation, so the plain client offers its last
 *   session too: both sides do the same kind of handshake.
 *
 * Method: warm up, then 5 rounds; report the median CPU µs per operation.
 * Run from the repository root: `npm run bench:tls`. Not a test.
 */
import { once } from 'node:events'
import { createServer as httpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { connect as tlsConnect, createServer as tlsServer } from 'node:tls'
import { DevWorkloadApi } from '@svidecar/certs'
import { Agent, fetch } from 'undici'
import { matchId, SpiffeTlsClient, SpiffeTlsServer, X509Source } from 'workload-api-client'
import { spiffeDispatcher } from 'workload-api-client/undici'

const SERVER = 'spiffe://example.org/bench/server'
const CLIENT = 'spiffe://example.org/bench/client'
const ROUNDS = 5
// BENCH_SCALE=0.05 makes a quick smoke run of the same code.
const SCALE = Number(process.env.BENCH_SCALE ?? 1)

async function cpuPerOp(fullOps: number, op: () => Promise<void>): Promise<number> {
  const ops = Math.max(1, Math.round(fullOps * SCALE))
  for (let i = 0; i < Math.min(200, ops); i++) await op()
  const samples: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.cpuUsage()
    for (let i = 0; i < ops; i++) await op()
    const used = process.cpuUsage(start)
    samples.push((used.user + used.system) / ops)
  }
  samples.sort((a, b) => a - b)
  return samples[Math.floor(samples.length / 2)] as number
}

function report(name: string, spiffe: number, plain: number, targetPct: number): void {
  const extra = ((spiffe - plain) / plain) * 100
  console.log(
    `${name.padEnd(34)} spiffe ${spiffe.toFixed(1).padStart(8)} µs  plain ${plain.toFixed(1).padStart(8)} µs  ` +
      `${extra >= 0 ? '+' : ''}${extra.toFixed(1)} % (target ≤ ${targetPct} %)`,
  )
}

const api = await DevWorkloadApi.start({
  intermediates: 1,
  workloads: [{ spiffeId: SERVER }, { spiffeId: CLIENT }],
})
const serverSource = await X509Source.create({ address: api.endpoint, spiffeId: SERVER })
const clientSource = await X509Source.create({ address: api.endpoint, spiffeId: CLIENT })
const serverSvid = api.currentSvid(SERVER)
const clientSvid = api.currentSvid(CLIENT)
if (serverSvid === undefined || clientSvid === undefined) throw new Error('no SVIDs')
const ca = api.bundlePem()

async function listen(server: import('node:net').Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return (server.address() as AddressInfo).port
}

// Warm connection: one request per op on a kept-alive connection.
const spiffe = new SpiffeTlsServer({ source: serverSource, authorizer: matchId(CLIENT) })
const spiffeHttps = spiffe.attach(httpsServer(spiffe.options, (_req, res) => res.end('ok')))
const plainHttps = httpsServer(
  { key: serverSvid.keyPem, cert: serverSvid.certChainPem, ca, requestCert: true, rejectUnauthorized: true },
  (_req, res) => res.end('ok'),
)
const spiffePort = await listen(spiffeHttps)
const plainPort = await listen(plainHttps)
const dispatcher = spiffeDispatcher({
  source: clientSource,
  authorizer: matchId(SERVER),
  agent: { connections: 1 },
})
const get = (port: number, d: Agent) => async () => {
  const res = await fetch(`https://127.0.0.1:${port}/`, { dispatcher: d })
  await res.arrayBuffer()
}
// Certificates carry no IP SANs: the plain agent's host check is skipped the way plain mTLS users do it.
const plainAgentNoHost = new Agent({
  connections: 1,
  connect: {
    key: clientSvid.keyPem,
    cert: clientSvid.certChainPem,
    ca,
    checkServerIdentity: () => undefined,
  },
})
// Both paths warmed before either is measured, so neither pays for the JIT warming undici's fetch.
await cpuPerOp(500, get(plainPort, plainAgentNoHost))
const warmSpiffe = await cpuPerOp(2000, get(spiffePort, dispatcher))
const warmPlain = await cpuPerOp(2000, get(plainPort, plainAgentNoHost))
report('fetch, warm connection', warmSpiffe, warmPlain, 5)

// Full handshakes: a new connection per op, closed once established and verified.
const spiffeTls = spiffe.attach(tlsServer(spiffe.options, (socket) => socket.end()))
const plainTls = tlsServer(
  { key: serverSvid.keyPem, cert: serverSvid.certChainPem, ca, requestCert: true, rejectUnauthorized: true },
  (socket) => socket.end(),
)
const spiffeTlsPort = await listen(spiffeTls)
const plainTlsPort = await listen(plainTls)
const client = new SpiffeTlsClient({ source: clientSource, authorizer: matchId(SERVER) })
const hsSpiffe = await cpuPerOp(200, async () => {
  const socket = await client.connect({ host: '127.0.0.1', port: spiffeTlsPort })
  socket.destroy()
})
let plainSession: Buffer | undefined
const hsPlain = await cpuPerOp(200, async () => {
  const socket = tlsConnect({
    ...(plainSession === undefined ? {} : { session: plainSession }),
    host: '127.0.0.1',
    port: plainTlsPort,
    key: clientSvid.keyPem,
    cert: clientSvid.certChainPem,
    ca,
    checkServerIdentity: () => undefined,
  })
  socket.on('session', (session: Buffer) => {
    plainSession = session
  })
  await once(socket, 'secureConnect')
  socket.destroy()
})
report('new mTLS connection', hsSpiffe, hsPlain, 10)

await dispatcher.close()
await plainAgentNoHost.close()
for (const s of [spiffeHttps, plainHttps]) s.closeAllConnections()
for (const s of [spiffeHttps, plainHttps, spiffeTls, plainTls]) s.close()
spiffe.close()
serverSource.close()
clientSource.close()
await api.close()
