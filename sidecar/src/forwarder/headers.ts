/**
 * Header rewriting between the two legs of a proxied exchange. Hop-by-hop
 * headers (RFC 9110 §7.6.1) describe one connection and never cross the
 * proxy: Connection and every field it names, Keep-Alive, Proxy-Connection,
 * TE, Transfer-Encoding and Upgrade. Proxy-Authorization is addressed to a
 * proxy, not to the origin; passing it on would hand credentials to a
 * server that was never meant to see them. Order and repeated fields are
 * otherwise preserved exactly.
 *
 * Two more fields belong to this sidecar, not to the exchange: `Expect`,
 * which the sidecar answers itself (expect.ts), and the refusal marker
 * `x-svidecar-error` on responses, which only this sidecar may set. An
 * upstream's marker (an app posing as the sidecar, or a peer sidecar's own
 * refusal) is passed on renamed to `x-svidecar-upstream-error`: still
 * readable, never mistaken for this sidecar's refusal.
 */
import { ERROR_HEADER } from './respond.ts'

const UPSTREAM_ERROR_HEADER = 'x-svidecar-upstream-error'

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
])

// Request fields that claim who the client is, or which hops it came through (security.md §7.2, §7.4): a client
// writes them freely, so none is ever forwarded; the sidecar sets its own (the peer-ID header) from the verified
// peer, after stripping. `x-spiffe-id` is the default peer-ID name, so an app behind any sidecar may trust it.
const IDENTITY = new Set([
  'x-spiffe-id',
  // RFC 9440.
  'client-cert',
  'client-cert-chain',
  'x-client-cert',
  'ssl-client-cert',
  'x-ssl-client-cert',
  // RFC 7239.
  'forwarded',
])
// x-forwarded-client-cert (Envoy's XFCC), x-forwarded-for/-host/-proto, and every field of the project's own.
const IDENTITY_PREFIXES = ['x-forwarded-', 'x-svidecar-']

function isIdentity(lower: string): boolean {
  // Some servers and CGI-style frameworks read "_" as "-": X_Spiffe_Id would pass for the real field there.
  const name = lower.includes('_') ? lower.replaceAll('_', '-') : lower
  return IDENTITY.has(name) || IDENTITY_PREFIXES.some((p) => name.startsWith(p))
}

// Every request and response lower-cases each field name several times (guards, both header copies). Clients
// send the same few names over and over, mostly capitalised (a new string each time); a bounded cache of what
// each spelling lowers to saves the allocation. Names only: values never go in it.
const LOWER = new Map<string, string>()
const LOWER_MAX = 512
// Real field names are short; a long one is lowered but not kept, so the cache holds at most ~64 KB however
// large the names a client invents.
const LOWER_MAX_NAME = 64

/** The field name in lower case (RFC 9110 §5.1: names are case-insensitive). */
export function lowerName(name: string): string {
  const known = LOWER.get(name)
  if (known !== undefined) return known
  const lower = name.toLowerCase()
  if (name.length > LOWER_MAX_NAME) return lower
  // A client inventing names cannot grow it: once full it starts over.
  if (LOWER.size >= LOWER_MAX) LOWER.clear()
  LOWER.set(name, lower)
  return lower
}

export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(lowerName(name))
}

/**
 * RFC 9110 §7.6.3: a proxy appends a Via entry to each message it forwards: the protocol version it received the
 * message in, and a pseudonym for itself (a host name would tell every upstream, an LLM provider included, the
 * pod's address). Earlier entries, the client's included, stay in front in their order.
 */
export const VIA_PSEUDONYM = 'svidecar'

export function viaEntry(httpVersion: string): string {
  return `${httpVersion} ${VIA_PSEUDONYM}`
}

export interface ForwardHeaderOptions {
  /** Lower-case names to drop (e.g. the peer-ID header a client may try to forge). */
  strip: ReadonlySet<string>
  /** Appended after stripping; each replaces every copy the client sent. */
  set?: Readonly<Record<string, string>>
  /** A WebSocket upgrade: the handshake headers are handled by the WebSocket client. */
  isUpgrade: boolean
  /** The request's HTTP version ("1.1"), for this hop's Via entry; none is added without it. */
  httpVersion?: string
}

/** Names listed in Connection are hop-by-hop for this message too. */
function connectionTokens(raw: readonly string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length !== 10 || lowerName(name) !== 'connection') continue
    for (const token of (raw[i + 1] as string).split(',')) {
      const t = token.trim().toLowerCase()
      if (t === '') continue
      tokens ??= new Set()
      tokens.add(t)
    }
  }
  return tokens
}

/** The flat header list to send upstream, from the client's `rawHeaders`. */
export function forwardHeaders(raw: readonly string[], options: ForwardHeaderOptions): string[] {
  const named = connectionTokens(raw)
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const lower = lowerName(name)
    if (HOP_BY_HOP.has(lower) || options.strip.has(lower) || named?.has(lower) || lower === 'expect') continue
    // Request trailers are not forwarded (undici sends the body only): announcing some would be a false promise.
    if (isIdentity(lower) || lower === 'trailer') continue
    if (options.set !== undefined && Object.hasOwn(options.set, lower)) continue
    out.push(name, raw[i + 1] as string)
  }
  if (options.set !== undefined)
    for (const [name, value] of Object.entries(options.set)) out.push(name, value)
  if (options.httpVersion !== undefined) out.push('via', viaEntry(options.httpVersion))
  return out
}

/** The flat header list to send back to the client, from the upstream's raw headers. */
export function responseHeaders(raw: readonly string[]): string[] {
  const named = connectionTokens(raw)
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const lower = lowerName(name)
    if (HOP_BY_HOP.has(lower) || named?.has(lower)) continue
    out.push(lower === ERROR_HEADER ? UPSTREAM_ERROR_HEADER : name, raw[i + 1] as string)
  }
  return out
}
