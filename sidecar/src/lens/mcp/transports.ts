/**
 * Streamable HTTP as the two MCP eras speak it: which era a request
 * belongs to, whether it may carry a batch, and (modern era, 2026-07-28)
 * whether the mirrored headers (`Mcp-Method`, `Mcp-Name`,
 * `MCP-Protocol-Version`) equal the body. A load balancer routes on those
 * headers, so a request whose headers say one thing and whose body another
 * is refused before anything is forwarded.
 */
import type { IncomingHttpHeaders } from 'node:http'
import {
  HEADER_MISMATCH,
  type JsonRpcProblem,
  type McpMessage,
  UNSUPPORTED_PROTOCOL_VERSION,
} from './jsonrpc.ts'

/**
 * Session era (2025-03-26 .. 2025-11-25, and the HTTP+SSE 2024-11-05), with 2024-10-07: the official TypeScript
 * SDK still negotiates that pre-release revision (SUPPORTED_PROTOCOL_VERSIONS), so its clients and servers may
 * agree on it.
 */
export const LEGACY_VERSIONS = ['2024-10-07', '2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25'] as const
/** Stateless era: `server/discover`, mirrored headers, no sessions. */
export const MODERN_VERSIONS = ['2026-07-28'] as const
export const SUPPORTED_VERSIONS: readonly string[] = [...LEGACY_VERSIONS, ...MODERN_VERSIONS]

/** Where a modern request names its protocol version in the body. */
export const META_VERSION_KEY = 'io.modelcontextprotocol/protocolVersion'

export type Era = 'legacy' | 'modern'

/** A version problem: 400 with `UnsupportedProtocolVersion` listing what the sidecar reads. */
export interface VersionProblem extends JsonRpcProblem {
  readonly data: { readonly supported: readonly string[] }
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(', ') : v
}

/**
 * The era and version of a request from its `MCP-Protocol-Version` header (absent: legacy, 2025-03-26 as the
 * spec says), or a problem when the sidecar cannot read that version.
 */
export function requestVersion(headers: IncomingHttpHeaders): { era: Era; version: string } | VersionProblem {
  const raw = header(headers, 'mcp-protocol-version')
  if (raw === undefined) return { era: 'legacy', version: '2025-03-26' }
  const version = raw.trim()
  if ((MODERN_VERSIONS as readonly string[]).includes(version)) return { era: 'modern', version }
  if ((LEGACY_VERSIONS as readonly string[]).includes(version)) return { era: 'legacy', version }
  return {
    code: UNSUPPORTED_PROTOCOL_VERSION,
    message: `MCP-Protocol-Version "${version.slice(0, 40)}" is not one the sidecar can check`,
    id: null,
    data: { supported: SUPPORTED_VERSIONS },
  }
}

/** JSON-RPC batches existed in 2025-03-26 (and were read before it); 2025-06-18 removed them. */
export function allowsBatch(version: string): boolean {
  return version === '2025-03-26' || version === '2024-11-05' || version === '2024-10-07'
}

/** The protocol version a message's `_meta` names (modern requests carry it in the body). */
export function metaVersion(message: McpMessage): string | undefined {
  if (message.kind === 'response') return undefined
  const meta = message.params?._meta
  if (meta === null || typeof meta !== 'object') return undefined
  const v = (meta as Record<string, unknown>)[META_VERSION_KEY]
  return typeof v === 'string' ? v : undefined
}

const SENTINEL = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/

/**
 * A mirrored header value as its sender meant it: `=?base64?…?=` carries UTF-8 that is not plain header-safe
 * ASCII. Undefined when the value is malformed (bad base64, bytes that are not UTF-8, a control character).
 */
export function decodeHeaderValue(raw: string): string | undefined {
  const m = SENTINEL.exec(raw)
  // A plain value that looks like the sentinel is always sent encoded: one that is not valid base64 is malformed.
  if (m === null && raw.startsWith('=?base64?') && raw.endsWith('?=')) return undefined
  if (m === null) {
    // Plain values are visible ASCII and spaces, never leading or trailing spaces (those are encoded).
    if (!/^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(raw)) return undefined
    return raw
  }
  const bytes = Buffer.from(m[1] as string, 'base64')
  if (bytes.toString('base64').replace(/=+$/, '') !== (m[1] as string).replace(/=+$/, '')) return undefined
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return undefined
  }
}

/** Methods whose target the modern era mirrors in `Mcp-Name`, and the param that holds it. */
const NAMED: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  // The tasks extension's Streamable HTTP binding (SEP-2663): requests for a task name it in Mcp-Name.
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
}

/**
 * Modern era: every mirrored header present and equal to the body, or the `HeaderMismatch` problem the spec
 * names. `Mcp-Param-*` headers are left alone: checking them needs the tool's schema (`x-mcp-header`), which
 * the server checks.
 */
export function checkMirroredHeaders(
  headers: IncomingHttpHeaders,
  version: string,
  message: McpMessage,
): JsonRpcProblem | undefined {
  const id = message.kind === 'response' ? message.id : message.kind === 'request' ? message.id : null
  const mismatch = (what: string): JsonRpcProblem => ({ code: HEADER_MISMATCH, message: what, id })
  const meta = metaVersion(message)
  if (meta !== undefined && meta !== version) {
    return mismatch(
      `MCP-Protocol-Version ${version} differs from the body's _meta version ${meta.slice(0, 40)}`,
    )
  }
  if (message.kind === 'response') return undefined
  if (message.kind === 'request' && meta === undefined) {
    // The header names the stateless era; a body without its version claim is another era's (or none).
    return mismatch(
      message.method === 'initialize'
        ? `initialize is the session era's handshake: it cannot be sent with MCP-Protocol-Version ${version}`
        : `MCP-Protocol-Version ${version} but the body's _meta names no protocol version`,
    )
  }
  // Mcp-Method is required on every request; the spec sets no header rule for notification POSTs, but one sent
  // must agree.
  return methodAndNameProblem(headers, message, message.kind === 'request', mismatch)
}

/**
 * Session era: no client of it sends `Mcp-Method` or `Mcp-Name`, but a load balancer or a dual-era server may
 * act on them, so any that was sent must equal the body (none is required).
 */
export function checkSentMirroredHeaders(
  headers: IncomingHttpHeaders,
  message: McpMessage,
): JsonRpcProblem | undefined {
  if (headers['mcp-method'] === undefined && headers['mcp-name'] === undefined) return undefined
  const id = message.kind === 'notification' ? null : message.id
  const mismatch = (what: string): JsonRpcProblem => ({ code: HEADER_MISMATCH, message: what, id })
  if (message.kind === 'response')
    return mismatch('a JSON-RPC response has no method for Mcp-Method or Mcp-Name')
  if (headers['mcp-method'] === undefined) return mismatch('Mcp-Name was sent without Mcp-Method')
  return methodAndNameProblem(headers, message, false, mismatch)
}

function methodAndNameProblem(
  headers: IncomingHttpHeaders,
  message: Exclude<McpMessage, { kind: 'response' }>,
  required: boolean,
  mismatch: (what: string) => JsonRpcProblem,
): JsonRpcProblem | undefined {
  const method = header(headers, 'mcp-method')
  if (method === undefined) return required ? mismatch('the Mcp-Method header is missing') : undefined
  // Only Mcp-Name and Mcp-Param-* values may use the base64 form; method names are plain, compared as sent.
  if (method !== message.method) return mismatch('the Mcp-Method header differs from the body')
  const param = NAMED[message.method]
  if (param === undefined) return undefined
  const rawName = header(headers, 'mcp-name')
  if (rawName === undefined) {
    return required ? mismatch(`the Mcp-Name header is missing for ${message.method}`) : undefined
  }
  const name = decodeHeaderValue(rawName)
  if (name === undefined) return mismatch('the Mcp-Name header is malformed')
  if (name !== message.params?.[param])
    return mismatch(`the Mcp-Name header differs from the body's ${param}`)
  return undefined
}

/** Session ids are visible ASCII (0x21..0x7E). */
export function validSessionId(id: string): boolean {
  return /^[\x21-\x7e]{1,1024}$/.test(id)
}
