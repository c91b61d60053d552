/**
 * The floor of the other ways a Node proxy can reach its upstream, for issue 13's "lighter path for plain
 * hops": the same job as bench/minimal-proxy.ts (no checks at all), with `node:http`'s client (responses
 * parsed by Node's own llhttp) instead of undici:
 *   pool:   one keep-alive Agent for every request (pooled, as undici's Pool);
 *   affine: one upstream connection per downstream connection (an Agent of one socket per client
 *           connection), the connection-affine forwarding the issue asks to evaluate.
 * If neither floor costs clearly less CPU per request than minimal-proxy.ts in bench/hop-cpu.ts, a sidecar
 * path built on it cannot win either.
 *
 * node minimal-http-proxy.ts '{"listen":"inbound"|"outbound","mode":"pool"|"affine","upstream":"…","tls":{…}}'
 * Prints the port it listens on.
 */
import {
  createServer as createHttpServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http'
import { createServer as createHttpsServer, Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'

interface Options {
  listen: 'inbound' | 'outbound'
  mode: 'pool' | 'affine'
  upstream: string
  tls: { key: string; cert: string; ca: string }
}

const o = JSON.parse(process.argv[2] as string) as Options
const upstream = new URL(o.upstream)
const secure = upstream.protocol === 'https:'
const agentOptions = {
  keepAlive: true,
  keepAliveMsecs: 60_000,
  ...(secure ? { key: o.tls.key, cert: o.tls.cert, ca: o.tls.ca, checkServerIdentity: () => undefined } : {}),
}
const newAgent = (maxSockets: number) =>
  secure ? new HttpsAgent({ ...agentOptions, maxSockets }) : new HttpAgent({ ...agentOptions, maxSockets })
const shared = newAgent(Number.POSITIVE_INFINITY)
const affine = new WeakMap<Socket, HttpAgent>()

function agentFor(req: IncomingMessage): HttpAgent {
  if (o.mode === 'pool') return shared
  let agent = affine.get(req.socket)
  if (agent === undefined) {
    const a = newAgent(1)
    affine.set(req.socket, a)
    req.socket.once('close', () => a.destroy())
    agent = a
  }
  return agent
}

const send = secure ? httpsRequest : httpRequest

function handle(req: IncomingMessage, res: ServerResponse): void {
  const headers: OutgoingHttpHeaders = { ...req.headers }
  delete headers.connection
  const up = send(
    {
      agent: agentFor(req),
      hostname: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    },
  )
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502)
    res.end()
  })
  req.pipe(up)
}

const server =
  o.listen === 'inbound'
    ? createHttpsServer(
        { key: o.tls.key, cert: o.tls.cert, ca: o.tls.ca, requestCert: true, rejectUnauthorized: true },
        handle,
      )
    : createHttpServer(handle)
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => {
  const a = server.address()
  process.stdout.write(`${typeof a === 'object' && a ? a.port : 0}\n`)
})
// Exit on SIGTERM so `--cpu-prof` can write its profile.
process.on('SIGTERM', () => process.exit(0))
