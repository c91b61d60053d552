/**
 * The library's SPIFFE mTLS helpers against plain Node/undici mTLS with the
 * same certificates, measured as process CPU time (user + system) per
 * operation, both ends in this process:
 *
 * - warm: `fetch` on one kept-alive connection, spiffeDispatcher vs undici's
 *   Agent with `connect: { key, cert, ca }` (target: at most 5 % more);
 * - handshake: a new connection per operation, SpiffeTlsClient.connect to
 *   a SpiffeTlsServer vs tls.connect to a tls server with requestCert and
 *   rejectUnauthorized, until the server's first byte, which it sends once it
 *   accepted the client (target: at most 10 % more). The SPIFFE client resumes
 *   sessions within one SVID generation, so the plain client offers its last
 *   session too: both sides do the same kind of handshake. Two plain
 *   clients: one passing key, cert and ca to every tls.connect (Node then
 *   builds a SecureContext per connection, as most plain code does), and a
 *   stricter one sharing one SecureContext, as the SPIFFE client does.
 *
 * Method: warm every cell up, then 7 rounds in which the cells take turns
 * (the order reversed every other round), so that JIT tier-up and the host's
 * drift fall on all of them alike; report the median CPU µs per operation.
 * Run from the repository root: `npm run bench:tls`. Not a test.
 */
import { once } from 'node:events'
import { createServer as httpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { createSecureContext, connect as tlsConnect, createServer as tlsServer } from 'node:tls'
import { DevWorkloadApi } from '@svidecar/certs'
import { Agent, fetch } from 'undici'
import { matchId, SpiffeTlsClient, SpiffeTlsServer, X509Source } from 'workload-api-client'
import { spiffeDispatcher } from 'workload-api-client/undici'

const SERVER = 'spiffe://example.org/bench/server'
const CLIENT = 'spiffe://example.org/bench/client'
const ROUNDS = 7
// BENCH_SCALE=0.05 makes a quick smoke run of the same code.
const SCALE = Number(process.env.BENCH_SCALE ?? 1)

/** Median CPU µs per op of each cell, the cells measured in turns. */
async function cpuPerOp(
  fullOps: number,
  cells: Record<string, () => Promise<void>>,
): Promise<Record<string, number>> {
  const ops = Math.max(1, Math.round(fullOps * SCALE))
  const names = Object.keys(cells)
  for (const name of names) for (let i = 0; i < ops; i++) await (cells[name] as () => Promise<void>)()
  const samples: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of r % 2 === 0 ? names : [...names].reverse()) {
      const op = cells[name] as () => Promise<void>
      const start = process.cpuUsage()
      for (let i = 0; i < ops; i++) await op()
      const used = process.cpuUsage(start)
      samples[name]?.push((used.user + used.system) / ops)
    }
  }
  const medians: Record<string, number> = {}
  for (const name of names) {
    const sorted = [...(samples[name] ?? [])].sort((a, b) => a - b)
    medians[name] = sorted[Math.floor(sorted.length / 2)] as number
  }
  return medians
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
const warm = await cpuPerOp(1000, {
  spiffe: get(spiffePort, dispatcher),
  plain: get(plainPort, plainAgentNoHost),
})
report('fetch, warm connection', warm.spiffe as number, warm.plain as number, 5)

// Full handshakes: a new connection per op, closed once established and verified.
// The server answers one byte once it accepted the client (for the SPIFFE server: after its verification), and
// the client waits for it: both ends finish their side of the handshake inside the measurement. Closing at the
// client's secureConnect instead would reset most connections before the server verified anything.
const spiffeTls = spiffe.attach(tlsServer(spiffe.options, (socket) => socket.end('.')))
const plainTls = tlsServer(
  { key: serverSvid.keyPem, cert: serverSvid.certChainPem, ca, requestCert: true, rejectUnauthorized: true },
  (socket) => socket.end('.'),
)
const spiffeTlsPort = await listen(spiffeTls)
const plainTlsPort = await listen(plainTls)
const client = new SpiffeTlsClient({ source: clientSource, authorizer: matchId(SERVER) })
const plainContext = createSecureContext({ key: clientSvid.keyPem, cert: clientSvid.certChainPem, ca })
const plainHandshake = (context: boolean) => {
  let session: Buffer | undefined
  return async () => {
    const socket = tlsConnect({
      ...(session === undefined ? {} : { session }),
      host: '127.0.0.1',
      port: plainTlsPort,
      ...(context
        ? { secureContext: plainContext }
        : { key: clientSvid.keyPem, cert: clientSvid.certChainPem, ca }),
      checkServerIdentity: () => undefined,
    })
    socket.on('session', (s: Buffer) => {
      session = s
    })
    await once(socket, 'data')
    socket.destroy()
  }
}
const hs = await cpuPerOp(200, {
  spiffe: async () => {
    const socket = await client.connect({ host: '127.0.0.1', port: spiffeTlsPort })
    await once(socket, 'data')
    socket.destroy()
  },
  plain: plainHandshake(false),
  plainContext: plainHandshake(true),
})
report('new mTLS connection', hs.spiffe as number, hs.plain as number, 10)
report('  plain sharing one SecureContext', hs.spiffe as number, hs.plainContext as number, 10)

await dispatcher.close()
await plainAgentNoHost.close()
for (const s of [spiffeHttps, plainHttps]) s.closeAllConnections()
for (const s of [spiffeHttps, plainHttps, spiffeTls, plainTls]) s.close()
spiffe.close()
serverSource.close()
clientSource.close()
await api.close()
