import { once } from 'node:events'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
// undici's fetch and its Agent share one set of types; Node's global fetch takes the dispatcher too.
import { fetch } from 'undici'
import { matchId, peerIdOf, spiffeTlsServer, X509Source } from 'workload-api-client'
import { spiffeDispatcher } from 'workload-api-client/undici'

// Two identities from one Workload API, to run both ends in one process;
// a real service and its client each hold the one SVID of their own.
const SERVER = process.env.SERVER_ID ?? 'spiffe://example.org/api'
const CLIENT = process.env.CLIENT_ID ?? 'spiffe://example.org/client'
const serverSource = await X509Source.create({ spiffeId: SERVER, timeoutMs: 10_000 })
const clientSource = await X509Source.create({ spiffeId: CLIENT, timeoutMs: 10_000 })

// The server presents its current SVID on every handshake and lets in only CLIENT.
const spiffe = spiffeTlsServer({ source: serverSource, authorizer: matchId(CLIENT) })
const server = spiffe.attach(
  createServer(spiffe.options, (req, res) => {
    res.end(`hello ${peerIdOf(req.socket)}\n`)
  }),
)
server.listen(0, '127.0.0.1')
await once(server, 'listening')
const { port } = server.address() as AddressInfo

// fetch through a dispatcher that presents CLIENT's SVID and talks only to SERVER.
const dispatcher = spiffeDispatcher({ source: clientSource, authorizer: matchId(SERVER) })
const res = await fetch(`https://127.0.0.1:${port}/`, { dispatcher })
console.log(`${res.status} ${(await res.text()).trim()}`)

await dispatcher.close()
server.close()
spiffe.close()
serverSource.close()
clientSource.close()
