/**
 * The admin listener: /healthz (the process is up), /readyz (a valid SVID is
 * held, every data listener is bound, and the sidecar is not draining),
 * /metrics (Prometheus). Loopback by
 * default, its own port, never the mTLS port; read-only.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import { listenHost } from '../config/address.ts'
import type { HostPort } from './server.ts'

export interface AdminOptions {
  address: HostPort
  registry: Registry
  isReady: () => { ready: boolean; reason?: string }
}

export interface Admin {
  address: HostPort
  close(): Promise<void>
}

export async function startAdmin(options: AdminOptions): Promise<Admin> {
  const server = createServer(
    { headersTimeout: 5000, requestTimeout: 10_000, keepAliveTimeout: 5000 },
    (req, res) =>
      handle(req, res, options).catch(() => {
        if (!res.headersSent) res.writeHead(500)
        res.end()
      }),
  )
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.address.port, listenHost(options.address.host), () => resolve())
  })
  const a = server.address() as AddressInfo
  return {
    address: { host: a.address, port: a.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

async function handle(req: IncomingMessage, res: ServerResponse, options: AdminOptions): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    reply(res, req, 405, 'text/plain', 'method not allowed\n', { allow: 'GET, HEAD' })
    return
  }
  switch (path) {
    case '/healthz':
      reply(res, req, 200, 'text/plain', 'ok\n')
      return
    case '/readyz': {
      const state = options.isReady()
      if (state.ready) reply(res, req, 200, 'text/plain', 'ready\n')
      else {
        const body = JSON.stringify({
          error: { code: 'SVD_IDENTITY_UNAVAILABLE', message: state.reason ?? 'not ready' },
        })
        reply(res, req, 503, 'application/json', body)
      }
      return
    }
    case '/metrics':
      reply(res, req, 200, options.registry.contentType, await options.registry.metrics())
      return
    default:
      reply(res, req, 404, 'text/plain', 'not found\n')
  }
}

function reply(
  res: ServerResponse,
  req: IncomingMessage,
  status: number,
  type: string,
  body: string,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...extra,
  })
  res.end(req.method === 'HEAD' ? undefined : body)
}
