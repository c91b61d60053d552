/**
 * Where the exchange goes. Inbound: always the local app. Outbound: the
 * first route of the listener's table that takes the Host and path; an
 * external API is addressed by its own name, a peer sidecar and its app keep
 * the name the client used. A route with a lens (`lens: llm`) names no
 * upstream: the exchange is marked for the lens, whose stage picks the
 * upstream per call; if no such stage runs, nothing is forwarded.
 */
import { SvidecarError } from '../errors/index.ts'
import type { Upstream, Upstreams } from '../forwarder/upstreams.ts'
import { requestStyle } from '../lens/llm/providers.ts'
import { type Route, RouteTable } from '../listener/routes.ts'
import type { Stage } from '../pipeline/stage.ts'

export function fixedRouteStage(upstream: Upstream): Stage {
  return {
    name: 'route',
    onRequest(exchange) {
      exchange.upstream = upstream
      return undefined
    },
  }
}

export function routeTableStage(routes: readonly Route[], upstreams: Upstreams): Stage {
  const table = new RouteTable(routes)
  return {
    name: 'route',
    onRequest(exchange) {
      const req = exchange.req
      const route = table.match(req.headers.host, req.url ?? '/')
      if (route?.lens !== undefined) {
        exchange.lens = route.lens
        // A refusal before the lens has read the call (no SVID yet) reaches an LLM SDK too: in its provider's shape.
        exchange.errorStyle = requestStyle(
          exchange.method,
          exchange.path,
          req.headers['anthropic-version'] !== undefined,
        )
        return undefined
      }
      const upstream = route?.upstream === undefined ? undefined : upstreams.get(route.upstream)
      if (route?.upstream !== undefined) exchange.route = route.upstream
      if (upstream === undefined) {
        // The path only: a query string may carry secrets and does not belong in an error message.
        return new SvidecarError(
          'SVD_ROUTE_NOT_FOUND',
          `no route for ${req.method} ${req.headers.host ?? ''}${exchange.path}`,
        )
      }
      exchange.upstream = upstream
      // Outbound, the subject is this workload; a peer sidecar whose ID is known exactly is the other end.
      if (upstream.peerId !== undefined) exchange.peer = upstream.peerId
      if (upstream.kind === 'https') {
        exchange.headers.strip.add('host')
        exchange.headers.set.host = upstream.url.host
      }
      return undefined
    },
  }
}
