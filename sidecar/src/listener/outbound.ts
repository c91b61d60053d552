/**
 * Outbound: plaintext from the local app on loopback, routed to upstreams.
 * The subject is this workload's own identity; peer sidecars are reached
 * over mTLS with the expected SPIFFE ID checked, external APIs over HTTPS.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import type { Duplex } from 'node:stream'
import { SvidecarError } from '../errors/index.ts'
import { guardBody } from '../forwarder/body-guard.ts'
import { handleExpectations } from '../forwarder/expect.ts'
import { forwardHeaders } from '../forwarder/headers.ts'
import { forwardHttp, hasBody } from '../forwarder/http.ts'
import { writeRawError } from '../forwarder/raw-error.ts'
import { sendError } from '../forwarder/respond.ts'
import type { Upstream, Upstreams } from '../forwarder/upstreams.ts'
import { relayWebSocket, upgradeHeaders } from '../forwarder/websocket.ts'
import type { Identity } from '../identity/identity.ts'
import { checkRequest } from './http-guards.ts'
import {
  drainRefusal,
  identityRefusal,
  MAX_WEBSOCKET_MESSAGE_BYTES,
  requestEnd,
  websocketOnly,
} from './inbound.ts'
import { normalizeTarget } from './request-target.ts'
import { type Route, RouteTable } from './routes.ts'
import { type HostPort, httpServerOptions, type ListenerLimits, ProxyListener } from './server.ts'

export interface OutboundOptions {
  name: string
  address: HostPort
  routes: readonly Route[]
  limits: ListenerLimits
  connectTimeoutMs: number
  /** Header names never forwarded (e.g. an inbound peer-ID header an app might echo). */
  strip?: readonly string[]
}

const ALWAYS_STRIP = ['x-forwarded-client-cert']

export interface OutboundListener {
  readonly listener: ProxyListener
  close(deadlineMs: number): Promise<void>
  destroy(): void
}

export async function startOutbound(
  identity: Identity,
  upstreams: Upstreams,
  options: OutboundOptions,
): Promise<OutboundListener> {
  const table = new RouteTable(options.routes)
  const strip = new Set([...ALWAYS_STRIP, ...(options.strip ?? []).map((h) => h.toLowerCase())])
  const stripWithHost = new Set([...strip, 'host'])
  const server = createServer(httpServerOptions(options.limits))
  const listener = new ProxyListener(options.name, 'outbound', server, options.limits)
  // Expect: 100-continue is answered by the forwarder once the upstream can take the body (forwarder/expect.ts).
  handleExpectations(server)

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (listener.draining) res.setHeader('connection', 'close')
    // The target is checked and rewritten to origin-form before the route table reads it.
    const bad = inspect(req)
    const route = bad === undefined ? table.match(req.headers.host, req.url ?? '/') : undefined
    const end = requestEnd(options.name, 'outbound', req, undefined, route?.upstream)
    const upstream = route === undefined ? undefined : upstreams.get(route.upstream)
    const refusal = bad ?? refuse(req, upstream)
    if (refusal !== undefined || upstream === undefined) {
      const err = refusal ?? new SvidecarError('SVD_ROUTE_NOT_FOUND', 'no route')
      sendError(res, err)
      end(err.status, err.code, err)
      return
    }
    forwardHttp(req, res, upstream, {
      headers: headersFor(req, upstream, false),
      onEnd: end,
      ...(hasBody(req) ? { body: guardBody(req, res, options.limits) } : {}),
    })
  })

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const bad = inspect(req)
    const route = bad === undefined ? table.match(req.headers.host, req.url ?? '/') : undefined
    const end = requestEnd(options.name, 'outbound', req, undefined, route?.upstream)
    const upstream = route === undefined ? undefined : upstreams.get(route.upstream)
    const refusal = bad ?? refuse(req, upstream) ?? websocketOnly(req)
    if (refusal !== undefined || upstream === undefined) {
      const err = refusal ?? new SvidecarError('SVD_ROUTE_NOT_FOUND', 'no route')
      writeRawError(socket, err)
      end(err.status, err.code, err)
      return
    }
    const createConnection = upstream.createConnection()
    const scheme = upstream.url.protocol === 'http:' ? 'ws' : 'wss'
    relayWebSocket(
      req,
      socket,
      head,
      {
        url: `${scheme}://${upstream.url.host}${upstream.basePath}${req.url ?? '/'}`,
        upstream: upstream.name,
        headers: upgradeHeaders(headersFor(req, upstream, true)),
        ...(createConnection === undefined ? {} : { createConnection }),
        maxPayload: MAX_WEBSOCKET_MESSAGE_BYTES,
        handshakeTimeoutMs: options.connectTimeoutMs,
      },
      end,
    )
  })

  function inspect(req: IncomingMessage): SvidecarError | undefined {
    return (
      drainRefusal(listener) ??
      checkRequest(req, {
        maxHeaderCount: options.limits.maxHeaderCount,
        maxBodyBytes: options.limits.maxBodyBytes,
        inbound: false,
      }) ??
      normalizeTarget(req)
    )
  }

  function refuse(req: IncomingMessage, upstream: Upstream | undefined): SvidecarError | undefined {
    if (upstream === undefined) {
      return new SvidecarError(
        'SVD_ROUTE_NOT_FOUND',
        `no route for ${req.method} ${req.headers.host ?? ''}${pathOf(req.url)}`,
      )
    }
    // Every kind of upstream, not only mTLS peers: with no valid SVID the sidecar is not ready and sends nothing.
    return identityRefusal(identity)
  }

  // An external API is addressed by its own name; a peer sidecar and its app keep the name the client used.
  function headersFor(req: IncomingMessage, upstream: Upstream, isUpgrade: boolean): string[] {
    return upstream.kind === 'https'
      ? forwardHeaders(req.rawHeaders, { strip: stripWithHost, set: { host: upstream.url.host }, isUpgrade })
      : forwardHeaders(req.rawHeaders, { strip, isUpgrade })
  }

  await listener.listen(options.address)
  return {
    listener,
    close: (deadlineMs) => listener.close(deadlineMs),
    destroy: () => listener.destroy(),
  }
}

// The path only: a query string may carry secrets and does not belong in an error message.
function pathOf(url: string | undefined): string {
  const u = url ?? '/'
  const q = u.indexOf('?')
  return q === -1 ? u : u.slice(0, q)
}
