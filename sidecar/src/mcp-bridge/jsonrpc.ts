/**
 * The JSON-RPC 2.0 shapes the bridges move, and the errors they answer with.
 *
 * Bridge errors use codes outside -32768…-32000: JSON-RPC reserves that
 * range, and MCP allocates -32020…-32099 and asks that -32000…-32019 stay
 * unused. Each error also names a stable `SVD_BRIDGE_*` code in `data.code`,
 * which is what clients and tests branch on.
 */

export type JsonRpcId = string | number

export interface JsonRpcMessage {
  jsonrpc: '2.0'
  id?: JsonRpcId | null
  method?: string
  params?: Record<string, unknown> | unknown[]
  result?: unknown
  error?: { code: number; message: string; data?: unknown }
}

export type MessageKind = 'request' | 'notification' | 'response'

export const BRIDGE_ERRORS = {
  /** The stdio server exited (or was stopped) before it answered. */
  SVD_BRIDGE_CHILD_EXITED: -31001,
  /** The stdio server did not answer within the request timeout. */
  SVD_BRIDGE_CHILD_TIMEOUT: -31002,
  /** A message over the line cap, in either direction; it was dropped. */
  SVD_BRIDGE_MESSAGE_TOO_LARGE: -31003,
  /** `mcp connect`: the remote MCP server could not be reached or answered with an HTTP error. */
  SVD_BRIDGE_UPSTREAM_FAILED: -31004,
  /** `mcp serve-stdio`: every session slot (`--max-sessions`) is taken. */
  SVD_BRIDGE_SESSION_LIMIT: -31005,
  /** The session id is unknown or its stdio server has ended: start over with `initialize`. */
  SVD_BRIDGE_SESSION_NOT_FOUND: -31006,
  /** The bridge is shutting down and takes no new messages. */
  SVD_BRIDGE_SHUTTING_DOWN: -31007,
} as const

export type BridgeErrorCode = keyof typeof BRIDGE_ERRORS

/** The standard JSON-RPC codes the bridges use for input they cannot read. */
export const PARSE_ERROR = -32700
export const INVALID_REQUEST = -32600

export function bridgeError(
  id: JsonRpcId | null,
  code: BridgeErrorCode,
  message: string,
  extra: Record<string, unknown> = {},
): JsonRpcMessage {
  return { jsonrpc: '2.0', id, error: { code: BRIDGE_ERRORS[code], message, data: { code, ...extra } } }
}

export function protocolError(id: JsonRpcId | null, code: number, message: string): JsonRpcMessage {
  return { jsonrpc: '2.0', id, error: { code, message } }
}

/** A JSON-RPC message, or why the value is not one. */
export function asMessage(value: unknown): JsonRpcMessage | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object'
  const m = value as Record<string, unknown>
  if (m.jsonrpc !== '2.0') return 'jsonrpc is not "2.0"'
  if ('id' in m && !isId(m.id) && !(m.id === null && 'error' in m)) return 'id must be a string or an integer'
  if (typeof m.method === 'string') return m as unknown as JsonRpcMessage
  if ('method' in m) return 'method must be a string'
  if (!('id' in m)) return 'neither a request, a notification nor a response'
  if ('result' in m === 'error' in m) return 'a response has exactly one of result and error'
  return m as unknown as JsonRpcMessage
}

export function isId(v: unknown): v is JsonRpcId {
  return typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v))
}

export function kindOf(m: JsonRpcMessage): MessageKind {
  if (typeof m.method === 'string') return isId(m.id) ? 'request' : 'notification'
  return 'response'
}

/** A map key that keeps `1` and `"1"` apart. */
export function idKey(id: JsonRpcId): string {
  return typeof id === 'number' ? `n:${id}` : `s:${id}`
}

/** The progress token a request asked for (params._meta.progressToken), if any. */
export function progressTokenOf(m: JsonRpcMessage): JsonRpcId | undefined {
  const params = m.params
  if (params === undefined || Array.isArray(params)) return undefined
  const meta = params._meta as Record<string, unknown> | undefined
  const token = meta?.progressToken
  return isId(token) ? token : undefined
}

/** Short, single-line excerpt of untrusted text for a log line. */
export function preview(text: string, max = 120): string {
  const flat = text.replace(/[\r\n\t]+/g, ' ')
  return flat.length > max ? `${flat.slice(0, max)}…` : flat
}

/**
 * The id of a response whose line was too long to read, from the line's end:
 * the official SDKs serialise `{"result":…,"jsonrpc":"2.0","id":N}`, so the
 * id is the last member. A miss only means the caller's timeout answers.
 */
export function trailingId(tail: string): JsonRpcId | undefined {
  const m = /"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")\s*\}\s*$/.exec(tail)
  if (m?.[1] === undefined) return undefined
  try {
    const v = JSON.parse(m[1]) as unknown
    return isId(v) ? v : undefined
  } catch {
    return undefined
  }
}
