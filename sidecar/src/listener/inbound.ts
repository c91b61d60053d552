/**
 * Inbound: mTLS from other sidecars to the local app. The verified peer
 * SPIFFE ID is the subject; it travels to the app in one header, after every
 * copy the client sent of that header (and of client-certificate headers)
 * was removed. This port never speaks plaintext.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import type { IdMatcher } from 'workload-api-client'
import { SvidecarError } from '../errors/index.ts'
import { guardBody } from '../forwarder/body-guard.ts'
import { handleExpectations } from '../forwarder/expect.ts'
import { forwardHeaders } from '../forwarder/headers.ts'
import { type EndCallback, forwardHttp, hasBody } from '../forwarder/http.ts'
import { writeRawError } from '../forwarder/raw-error.ts'
import { sendError } from '../forwarder/respond.ts'
import { Upstream } from '../forwarder/upstreams.ts'
import { relayWebSocket, upgradeHeaders } from '../forwarder/websocket.ts'
import type { Identity } from '../identity/identity.ts'
import { publishRequest } from '../observe/events.ts'
import type { TlsParameters } from '../tls/profiles.ts'
import { peerIdOf, ServerTls } from '../tls/server-tls.ts'
import { checkRequest } from './http-guards.ts'
import { normalizeTarget } from './request-target.ts'
import { type HostPort, httpServerOptions, type ListenerLimits, ProxyListener } from './server.ts'

export interface InboundOptions {
  name: string
  address: HostPort
  /** The local app, http:// on loopback. */
  forwardTo: URL
  peerIdHeader: string
  authorizer: IdMatcher
  /** Versions and suites of the listener's TLS profile. */
  tls: TlsParameters
  handshakeTimeoutMs: number
  limits: ListenerLimits
  connectTimeoutMs: number
}

// Headers a client could use to pose as someone else; only the sidecar speaks for the peer.
const CLIENT_CERT_HEADERS = [
  'x-forwarded-client-cert',
  'x-client-cert',
  'ssl-client-cert',
  'x-ssl-client-cert',
]

export interface InboundListener {
  readonly listener: ProxyListener
  readonly tls: ServerTls
  close(deadlineMs: number): Promise<void>
  destroy(): Promise<void>
}

export async function startInbound(identity: Identity, options: InboundOptions): Promise<InboundListener> {
  const tls = new ServerTls(identity, {
    listener: options.name,
    authorizer: options.authorizer,
    params: options.tls,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
  })
  const appSpec = { name: `${options.name}-app`, url: options.forwardTo, kind: 'plaintext' as const }
  const app = new Upstream(appSpec, {
    connectTimeoutMs: options.connectTimeoutMs,
    idleTimeoutMs: options.limits.idleTimeoutMs,
    requestTimeoutMs: options.limits.requestTimeoutMs,
    minVersion: options.tls.minVersion,
  })
  const header = options.peerIdHeader.toLowerCase()
  const strip = new Set([header, ...CLIENT_CERT_HEADERS])
  const server = createHttpsServer({ ...httpServerOptions(options.limits), ...tls.serverOptions() })
  const listener = new ProxyListener(options.name, 'inbound', server, options.limits)
  tls.attach(server)
  // Expect: 100-continue is answered by the forwarder once the upstream can take the body (forwarder/expect.ts).
  handleExpectations(server)

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const peerId = peerIdOf(req.socket as TLSSocket)
    const end = requestEnd(options.name, 'inbound', req, peerId?.toString())
    if (listener.draining) res.setHeader('connection', 'close')
    const refusal =
      peerId === undefined
        ? new SvidecarError('SVD_PEER_REJECTED', 'the connection has no verified peer')
        : (drainRefusal(listener) ?? identityRefusal(identity) ?? inspect(req))
    if (refusal !== undefined || peerId === undefined) {
      const err = refusal ?? new SvidecarError('SVD_PEER_REJECTED', 'no verified peer')
      sendError(res, err)
      end(err.status, err.code, err)
      return
    }
    const headers = forwardHeaders(req.rawHeaders, {
      strip,
      set: { [header]: peerId.toString() },
      isUpgrade: false,
    })
    forwardHttp(req, res, app, {
      headers,
      onEnd: end,
      ...(hasBody(req) ? { body: guardBody(req, res, options.limits) } : {}),
    })
  })

  function inspect(req: IncomingMessage): SvidecarError | undefined {
    return (
      checkRequest(req, {
        maxHeaderCount: options.limits.maxHeaderCount,
        maxBodyBytes: options.limits.maxBodyBytes,
        inbound: true,
      }) ?? normalizeTarget(req)
    )
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const peerId = peerIdOf(req.socket as TLSSocket)
    const end = requestEnd(options.name, 'inbound', req, peerId?.toString())
    const refusal =
      peerId === undefined
        ? new SvidecarError('SVD_PEER_REJECTED', 'the connection has no verified peer')
        : (drainRefusal(listener) ?? identityRefusal(identity) ?? inspect(req) ?? websocketOnly(req))
    if (refusal !== undefined || peerId === undefined) {
      const err = refusal ?? new SvidecarError('SVD_PEER_REJECTED', 'no verified peer')
      writeRawError(socket, err)
      end(err.status, err.code, err)
      return
    }
    const flat = forwardHeaders(req.rawHeaders, {
      strip,
      set: { [header]: peerId.toString() },
      isUpgrade: true,
    })
    relayWebSocket(
      req,
      socket,
      head,
      {
        url: `ws://${options.forwardTo.host}${app.basePath}${req.url ?? '/'}`,
        upstream: app.name,
        headers: upgradeHeaders(flat),
        maxPayload: MAX_WEBSOCKET_MESSAGE_BYTES,
        handshakeTimeoutMs: options.connectTimeoutMs,
      },
      end,
    )
  })

  await listener.listen(options.address)
  return {
    listener,
    tls,
    async close(deadlineMs) {
      await listener.close(deadlineMs)
      tls.close()
      await app.close()
    },
    async destroy() {
      listener.destroy()
      tls.close()
      await app.destroy()
    },
  }
}

/**
 * The one publish call per request, whichever way it ends. A client that left is reported as aborted, not
 * under a made-up status; a code that is not the sidecar's (CLIENT_ABORTED) becomes the reason.
 */
export function requestEnd(
  listener: string,
  direction: 'inbound' | 'outbound',
  req: IncomingMessage,
  peerId?: string,
  upstream?: string,
): EndCallback {
  const started = performance.now()
  return (status, code, err) => {
    const own = err !== undefined || (code?.startsWith('SVD_') ?? false)
    const reason = err?.reason ?? (own ? undefined : code)
    const aborted = code === 'CLIENT_ABORTED'
    publishRequest({
      listener,
      direction,
      method: req.method ?? '',
      ...(upstream === undefined ? {} : { route: upstream, upstream }),
      status: aborted ? 0 : status,
      ...(own && code !== undefined ? { code } : {}),
      ...(reason === undefined ? {} : { reason }),
      ...(aborted ? { aborted } : {}),
      durationMs: performance.now() - started,
      ...(peerId === undefined ? {} : { peerId }),
    })
  }
}

/** New requests while draining, also on connections opened before: the client should go elsewhere. */
export function drainRefusal(listener: ProxyListener): SvidecarError | undefined {
  return listener.draining
    ? new SvidecarError(
        'SVD_SHUTTING_DOWN',
        `listener ${listener.name} is draining and takes no new requests`,
      )
    : undefined
}

/** Only WebSocket may upgrade; h2c and others would tunnel past every check. */
export function websocketOnly(req: IncomingMessage): SvidecarError | undefined {
  return req.headers.upgrade?.toLowerCase() === 'websocket'
    ? undefined
    : new SvidecarError('SVD_REQUEST_INVALID', `upgrade to "${req.headers.upgrade ?? ''}" is not supported`, {
        reason: 'UPGRADE_NOT_SUPPORTED',
      })
}

// ws would take 100 MiB per message; a tool call or token stream needs a fraction of that.
export const MAX_WEBSOCKET_MESSAGE_BYTES = 16 * 1024 * 1024

/** An SVID that expired mid-connection: refuse, never serve on stale credentials. */
export function identityRefusal(identity: Identity): SvidecarError | undefined {
  return identity.ready
    ? undefined
    : new SvidecarError('SVD_IDENTITY_UNAVAILABLE', `not ready: ${identity.notReadyReason()}`)
}
