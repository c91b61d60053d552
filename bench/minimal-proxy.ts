/**
 * The Node floor for the data-plane benchmark: the smallest proxy that does
 * the same job as one svidecar hop, with none of its checks (no SPIFFE
 * verification beyond OpenSSL's chain check, no guards, no metrics). What
 * svidecar costs above this is the price of its features.
 *
 * node minimal-proxy.ts '{"listen":"inbound"|"outbound","upstream":"https://…","tls":{key,cert,ca}}'
 * (bench/floor.ts starts it). `tls` may be left out for an outbound proxy to a
 * plaintext upstream. Prints the port it listens on.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { type Dispatcher, Pool } from 'undici'

interface Options {
  /** inbound: mTLS in, plaintext out; outbound: plaintext in, mTLS out (or plaintext to an http upstream). */
  listen: 'inbound' | 'outbound'
  upstream: string
  tls?: { key: string; cert: string; ca: string }
}

const o = JSON.parse(process.argv[2] as string) as Options
const upstream = new URL(o.upstream)
const pool = new Pool(upstream.origin, {
  pipelining: 1,
  keepAliveTimeout: 60_000,
  ...(o.listen === 'outbound' && o.tls !== undefined
    ? { connect: { key: o.tls.key, cert: o.tls.cert, ca: o.tls.ca, checkServerIdentity: () => undefined } }
    : {}),
})

const tls = o.tls ?? { key: '', cert: '', ca: '' }

function handle(req: IncomingMessage, res: ServerResponse): void {
  pool
    .request({
      path: req.url ?? '/',
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: req.headers,
      body: req,
    })
    .then(
      (up) => {
        res.writeHead(up.statusCode, up.headers as Record<string, string>)
        up.body.pipe(res)
      },
      () => {
        res.writeHead(502)
        res.end()
      },
    )
}

const server =
  o.listen === 'inbound'
    ? createHttpsServer(
        { key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: true },
        handle,
      )
    : createHttpServer(handle)
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => {
  const a = server.address()
  process.stdout.write(`${typeof a === 'object' && a ? a.port : 0}\n`)
})
// Exit on SIGTERM so `--cpu-prof` can write its profile (bench/hop-cpu.ts).
process.on('SIGTERM', () => process.exit(0))
