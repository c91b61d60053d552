/**
 * Fixtures for the HTTP edge tests: an app that records exactly what reached
 * it (head, body bytes, whether the request was cut), a server sidecar whose
 * inbound mTLS listener forwards to that app under the base path /api, an
 * agent sidecar whose outbound listener sends Host "mesh" through the server
 * sidecar and everything else straight to the app under /api, and raw
 * sockets (net for outbound, tls with the agent's SVID for inbound) to talk
 * to both listeners byte by byte.
 */
import { EventEmitter, once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import { DevWorkloadApi } from '@svidecar/certs'
import type { Test } from 'tap'
import { matchId } from 'workload-api-client'
import { createLogger } from '../../src/observe/log.ts'
import type { Sidecar } from '../../src/sidecar.ts'
import { ClientTls } from '../../src/tls/client-tls.ts'
import { tlsParameters } from '../../src/tls/profiles.ts'
import { AGENT, MCP } from './mesh.ts'
import { startTestSidecar } from './test-sidecar.ts'

export interface Received {
  method: string
  url: string
  rawHeaders: string[]
  bytes: number
  /** The body ended as declared. */
  complete: boolean
  /** The connection went away before the body ended. */
  aborted: boolean
}

export class RecordingApp {
  readonly server: Server
  readonly received: Received[] = []
  readonly events = new EventEmitter()
  readonly #held: ServerResponse[] = []

  private constructor() {
    this.server = createServer((req, res) => this.#handle(req, res))
    // WebSocket upgrades are recorded and refused: the tests need only where they arrived.
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      this.received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: [...req.rawHeaders],
        bytes: 0,
        complete: true,
        aborted: false,
      })
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
    })
  }

  static async start(): Promise<RecordingApp> {
    const app = new RecordingApp()
    app.server.listen(0, '127.0.0.1')
    await once(app.server, 'listening')
    return app
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  release(): void {
    for (const res of this.#held.splice(0)) res.end('released')
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise((r) => this.server.close(r))
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const record: Received = {
      method: req.method ?? '',
      url: req.url ?? '',
      rawHeaders: [...req.rawHeaders],
      bytes: 0,
      complete: false,
      aborted: false,
    }
    this.received.push(record)
    this.events.emit('request', record)
    req.on('data', (chunk: Buffer) => {
      record.bytes += chunk.length
    })
    req.on('end', () => {
      record.complete = true
    })
    req.on('close', () => {
      if (!record.complete) {
        record.aborted = true
        this.events.emit('aborted', record)
      }
    })
    if (req.url?.endsWith('/hang')) {
      res.writeHead(200, { 'content-type': 'text/plain' })
      this.#held.push(res)
      this.events.emit('held')
      req.resume()
      return
    }
    if (req.url?.endsWith('/now')) {
      // Answered at once, the body left unread.
      res.end('now')
      return
    }
    if (req.url?.endsWith('/early')) {
      // The response starts before the body is read: a cut after this point can only close the connection.
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.flushHeaders()
      req.on('end', () => res.end('done'))
      return
    }
    req.on('end', () => {
      const body = JSON.stringify({ url: record.url, bytes: record.bytes })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  }
}

export interface Edge {
  api: DevWorkloadApi
  app: RecordingApp
  server: Sidecar
  agent: Sidecar
  /** Port of the agent's plaintext outbound listener. */
  outboundPort: number
  /** Port of the server's inbound mTLS listener. */
  inboundPort: number
  /** Raw connections: plaintext to the outbound listener, mTLS with the agent's SVID to the inbound one. */
  connect: Record<'outbound' | 'inbound', () => Promise<Duplex>>
  /** Everything the two sidecars logged, one JSON record per entry. */
  logs: Record<string, unknown>[]
  metrics(which: 'agent' | 'server'): Promise<string>
}

/** Both sidecars share `limits` (a YAML flow mapping such as `{ maxBodyBytes: 1000 }`). */
export async function startEdge(t: Test, limits = '{}'): Promise<Edge> {
  const api = await DevWorkloadApi.start({
    workloads: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp' },
    ],
  })
  t.teardown(() => api.close())
  const app = await RecordingApp.start()
  t.teardown(() => app.close())
  const logs: Record<string, unknown>[] = []
  const logger = createLogger({
    level: 'info',
    stream: { write: (line: string) => logs.push(JSON.parse(line)) },
  })
  const server = await startTestSidecar(
    t,
    { socket: api.endpoint, hint: 'mcp' },
    `limits: ${limits}
inbound:
  - name: public
    address: "127.0.0.1:0"
    forwardTo: "${app.url}/api"
    authorize: { exact: "${AGENT}" }
`,
    { logger },
  )
  const inboundPort = server.addresses.inbound.public?.port ?? 0
  const agent = await startTestSidecar(
    t,
    { socket: api.endpoint, hint: 'agent' },
    `limits: ${limits}
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - match: { host: mesh }
        upstream: mcp
      - upstream: plain
upstreams:
  mcp:
    url: "https://127.0.0.1:${inboundPort}"
    spiffe: { exact: "${MCP}" }
  plain:
    url: "${app.url}/api"
    allowPlaintext: true
`,
    { logger },
  )
  await server.identity.waitReady(5000)
  await agent.identity.waitReady(5000)
  const outboundPort = agent.addresses.outbound.egress?.port ?? 0
  const tls = new ClientTls(agent.identity, {
    upstream: 'raw-test-client',
    authorizer: matchId(MCP),
    params: tlsParameters('intermediate', 'TLSv1.2'),
    connectTimeoutMs: 5000,
  })
  const sockets: Duplex[] = []
  t.teardown(() => {
    for (const s of sockets) s.destroy()
  })
  const track = (s: Duplex) => {
    sockets.push(s)
    s.on('error', () => {})
    return s
  }
  return {
    api,
    app,
    server,
    agent,
    outboundPort,
    inboundPort,
    logs,
    connect: {
      outbound: async () => {
        const s = connect(outboundPort, '127.0.0.1')
        await once(s, 'connect')
        return track(s)
      },
      inbound: () =>
        new Promise<Duplex>((resolve, reject) =>
          tls.connect({ hostname: '127.0.0.1', port: inboundPort }, (err, s) =>
            err ? reject(err) : resolve(track(s as TLSSocket)),
          ),
        ),
    },
    async metrics(which) {
      const { host, port } = (which === 'agent' ? agent : server).addresses.admin
      return (await fetch(`http://${host}:${port}/metrics`)).text()
    },
  }
}

export interface RawResult {
  /** Everything the sidecar wrote, latin1. */
  text: string
  status: number
  /** The x-svidecar-error header, if any. */
  code: string | undefined
  /** The sidecar closed the connection (within the deadline). */
  closed: boolean
}

/** Parses the first response of a byte stream. */
export function parseResponse(text: string, closed: boolean): RawResult {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)
  const code = /\r\nx-svidecar-error: ([A-Z_]+)\r\n/i.exec(text)?.[1]
  return { text, status, code, closed }
}

/**
 * Writes `parts` (a function part waits for something, e.g. for what was received so far, before the next
 * write), then reads until the sidecar
 * closes the connection or `deadlineMs` passes (then `closed` is false).
 */
export async function rawExchange(
  socket: Duplex,
  parts: (string | Buffer | ((received: () => string) => Promise<unknown>))[],
  deadlineMs = 10_000,
): Promise<RawResult> {
  let text = ''
  socket.setEncoding('latin1')
  socket.on('data', (d: string) => {
    text += d
  })
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), deadlineMs)
    timer.unref()
    socket.once('close', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
  for (const part of parts) {
    if (typeof part === 'function') await part(() => text)
    else if (!socket.destroyed) socket.write(part)
  }
  const wasClosed = await closed
  return parseResponse(text, wasClosed)
}

/** A plain GET through the listener on a fresh connection: the process is still up and serving. */
export async function stillServing(edge: Edge, side: 'outbound' | 'inbound'): Promise<number> {
  const s = await edge.connect[side]()
  const r = await rawExchange(s, ['GET /alive HTTP/1.1\r\nHost: ok\r\nConnection: close\r\n\r\n'])
  return r.status
}
