/**
 * The outbound route table: first match wins. Hosts compare
 * case-insensitively without the port; path prefixes match whole segments
 * only, so `/mcp` takes `/mcp`, `/mcp/x`, `/mcp;x` and `/mcp%2Fx`
 * (pipeline/path-prefix.ts) but never `/mcpx`.
 */
import { underPrefix } from '../pipeline/path-prefix.ts'

export interface Route {
  host?: string
  pathPrefix?: string
  /** Absent on a route with a lens that picks the upstream per call (`lens: llm`). */
  upstream?: string
  lens?: 'llm'
}

export class RouteTable {
  readonly #routes: readonly Route[]

  constructor(routes: readonly Route[]) {
    this.#routes = routes.map((r) => ({
      ...r,
      ...(r.host === undefined ? {} : { host: r.host.toLowerCase() }),
      ...(r.pathPrefix === undefined ? {} : { pathPrefix: trimSlash(r.pathPrefix) }),
    }))
  }

  /** The route for a request's Host header and target, or undefined. */
  match(hostHeader: string | undefined, target: string): Route | undefined {
    const host = hostHeader === undefined ? '' : hostOnly(hostHeader)
    const q = target.indexOf('?')
    const path = q === -1 ? target : target.slice(0, q)
    for (const route of this.#routes) {
      if (route.host !== undefined && route.host !== host) continue
      if (route.pathPrefix !== undefined && !underPrefix(path, route.pathPrefix)) continue
      return route
    }
    return undefined
  }
}

function trimSlash(prefix: string): string {
  return prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
}

function hostOnly(header: string): string {
  const h = header.trim().toLowerCase()
  if (h.startsWith('[')) {
    const end = h.indexOf(']')
    return end === -1 ? h : h.slice(0, end + 1)
  }
  const colon = h.lastIndexOf(':')
  return colon === -1 ? h : h.slice(0, colon)
}
