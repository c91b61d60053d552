// TCP connections that never start their TLS handshake each hold a TLS
// socket in the process (about 22 KB each, measured on Node 24) until the
// handshake timeout ends them. The connection limit is checked when a
// handshake completes, so before this bound a client could open tens of
// thousands and take the process's memory (security.md §3: cap connections).
// Beyond twice `limits.maxConnections` a connection is closed as it is
// accepted; up to there the excess still gets its 503 SVD_OVERLOADED.
import { once } from 'node:events'
import { createServer as createHttpsServer } from 'node:https'
import { type AddressInfo, connect as netConnect, type Socket } from 'node:net'
import { DevWorkloadApi } from '@svidecar/certs'
import t from 'tap'
import { matchId } from 'workload-api-client'
import { Identity } from '../src/identity/identity.ts'
import { httpServerOptions, ProxyListener } from '../src/listener/server.ts'
import { on, type RefusedEvent } from '../src/observe/events.ts'
import { tlsParameters } from '../src/tls/profiles.ts'
import { ServerTls } from '../src/tls/server-tls.ts'

const AGENT = 'spiffe://example.org/agent'
const MCP = 'spiffe://example.org/mcp'

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

t.test(
  'idle TCP connections beyond twice maxConnections are closed at accept, not held to the handshake timeout',
  async (t) => {
    const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: MCP, hint: 'mcp' }] })
    t.teardown(() => api.close())
    const mcp = Identity.start({
      socket: api.endpoint,
      hint: 'mcp',
      backoff: () => ({ next: () => 50, reset() {} }),
    })
    t.teardown(() => mcp.close())
    await mcp.waitReady(5000)
    const limits = {
      maxHeaderBytes: 16_384,
      maxHeaderCount: 100,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 0,
      idleTimeoutMs: 60_000,
      bodyIdleTimeoutMs: 60_000,
      maxBodyBytes: 0,
      maxConnections: 4,
    }
    const tls = new ServerTls(mcp, {
      listener: 'flood',
      authorizer: matchId(AGENT),
      params: tlsParameters('intermediate', 'TLSv1.2'),
      // Far beyond the test: only the accept-time bound can close connections here.
      handshakeTimeoutMs: 120_000,
    })
    const server = createHttpsServer({ ...httpServerOptions(limits), ...tls.serverOptions() }, (_q, r) =>
      r.end(),
    )
    new ProxyListener('flood', 'inbound', server, limits)
    tls.attach(server)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => {
      tls.close()
      server.close()
    })
    const refused: RefusedEvent[] = []
    t.teardown(on('refused', (e) => e.listener === 'flood' && refused.push(e)))
    let tlsRefusals = 0
    t.teardown(
      on('tlsRejected', (e) => {
        if (e.listener === 'flood') tlsRefusals++
      }),
    )
    const port = (server.address() as AddressInfo).port
    const sockets: Socket[] = []
    let closed = 0
    for (let i = 0; i < 40; i++) {
      const s = netConnect(port, '127.0.0.1')
      s.on('error', () => {})
      s.on('close', () => closed++)
      sockets.push(s)
    }
    t.teardown(() => {
      for (const s of sockets) s.destroy()
    })
    await until(() => closed >= 32, 'the sidecar to close the connections beyond twice the limit')
    const open = await new Promise<number>((resolve) => server.getConnections((_e, n) => resolve(n)))
    t.ok(open <= 8, `at most twice maxConnections held (${open})`)
    t.equal(closed, 32, 'the first eight stay until their handshake timeout')
    t.ok(
      refused.length >= 32 && refused.every((e) => e.code === 'SVD_OVERLOADED' && e.status === 0),
      'each counted as SVD_OVERLOADED, closed without an answer',
    )
    t.equal(tlsRefusals, 0, 'and not counted again as a refused handshake')
  },
)
