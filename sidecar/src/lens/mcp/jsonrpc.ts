/**
 * JSON-RPC 2.0 as MCP uses it, read strictly: a body is one message or (in
 * the eras that allow it) a non-empty batch; every message says
 * `"jsonrpc": "2.0"`; request ids are strings or integers, never null, and
 * unique within a batch; params are an object. Anything else is refused
 * with the JSON-RPC error the spec names, before the policy is asked.
 */
import { clashIn, foldedClash } from './member-names.ts'

export type JsonRpcId = string | number

export type McpMessage =
  | { readonly kind: 'request'; readonly id: JsonRpcId; readonly method: string; readonly params: Params }
  | { readonly kind: 'notification'; readonly method: string; readonly params: Params }
  /** A client's answer to a server's request (sampling, elicitation, roots). */
  | { readonly kind: 'response'; readonly id: JsonRpcId | null; readonly result?: unknown }

export type Params = Readonly<Record<string, unknown>> | undefined

export interface ParsedBody {
  /** The body was a JSON array (a batch), even of one message. */
  readonly batch: boolean
  readonly messages: readonly McpMessage[]
}

export const PARSE_ERROR = -32700
export const INVALID_REQUEST = -32600
export const METHOD_NOT_FOUND = -32601
export const INVALID_PARAMS = -32602
export const INTERNAL_ERROR = -32603
/** 2025-11-25 and earlier: resource not found. */
export const RESOURCE_NOT_FOUND_LEGACY = -32002
export const HEADER_MISMATCH = -32020
export const UNSUPPORTED_PROTOCOL_VERSION = -32022
/**
 * The sidecar's own "denied by policy" code. The spec reserves -32768..-32000 (and MCP -32020..-32099), so an
 * application code lies outside it: a positive one, the HTTP status it mirrors.
 */
export const POLICY_DENIED = 403

/** A message (or body) the sidecar refuses, with the JSON-RPC error to answer. */
export interface JsonRpcProblem {
  readonly code: number
  readonly message: string
  /** The id of the offending request when it could be read; the answer's id (null otherwise). */
  readonly id: JsonRpcId | null
}

export function isProblem(v: ParsedBody | JsonRpcProblem): v is JsonRpcProblem {
  return (v as JsonRpcProblem).code !== undefined
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

function validId(v: unknown): v is JsonRpcId {
  return typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v))
}

/** Parses and checks a POST body. `allowBatch`: the era's rule for arrays. */
export function parseBody(body: Buffer, allowBatch: boolean): ParsedBody | JsonRpcProblem {
  let doc: unknown
  try {
    doc = JSON.parse(body.toString('utf8'))
  } catch {
    return { code: PARSE_ERROR, message: 'the body is not JSON', id: null }
  }
  if (Array.isArray(doc)) {
    if (!allowBatch) {
      return {
        code: INVALID_REQUEST,
        message: 'JSON-RPC batches are not allowed in this protocol version',
        id: null,
      }
    }
    if (doc.length === 0) return { code: INVALID_REQUEST, message: 'the batch is empty', id: null }
    const messages: McpMessage[] = []
    const ids = new Set<string>()
    for (let i = 0; i < doc.length; i++) {
      const m = parseMessage(doc[i], `batch element ${i}`)
      if ('code' in m) return m
      if (m.kind === 'request') {
        // "1" and 1 are different ids.
        const key = `${typeof m.id}:${m.id}`
        if (ids.has(key)) {
          return {
            code: INVALID_REQUEST,
            message: `batch element ${i} repeats request id ${JSON.stringify(m.id)}`,
            id: null,
          }
        }
        ids.add(key)
      }
      messages.push(m)
    }
    return { batch: true, messages }
  }
  const m = parseMessage(doc, 'the message')
  if ('code' in m) return m
  return { batch: false, messages: [m] }
}

function parseMessage(v: unknown, where: string): McpMessage | JsonRpcProblem {
  if (!isObject(v)) return { code: INVALID_REQUEST, message: `${where} is not a JSON object`, id: null }
  const rawId = v.id
  const id = validId(rawId) ? rawId : null
  // What the lens decides on (the message, its params, a tool's arguments) must read the same to every parser.
  const params = v.params
  const clash =
    clashIn(v) ?? (isObject(params) ? (clashIn(params) ?? foldedClash(params.arguments)) : undefined)
  if (clash !== undefined) {
    return {
      code: INVALID_REQUEST,
      message: `${where} has member names other parsers read as the same member: ${JSON.stringify(clash[0].slice(0, 40))} and ${JSON.stringify(clash[1].slice(0, 40))}`,
      id,
    }
  }
  if (v.jsonrpc !== '2.0') {
    return { code: INVALID_REQUEST, message: `${where} does not say "jsonrpc": "2.0"`, id }
  }
  if (v.method === undefined) {
    const isResult = Object.hasOwn(v, 'result')
    const isError = Object.hasOwn(v, 'error')
    if (isResult === isError) {
      return { code: INVALID_REQUEST, message: `${where} has no method, result or error`, id }
    }
    // Only an error answer may have a null id (its request could not be read).
    if (!(validId(rawId) || (isError && rawId === null))) {
      return {
        code: INVALID_REQUEST,
        message: `${where} has an id that is not a string or an integer`,
        id: null,
      }
    }
    return isResult ? { kind: 'response', id, result: v.result } : { kind: 'response', id }
  }
  if (typeof v.method !== 'string' || v.method === '') {
    return { code: INVALID_REQUEST, message: `${where} has a method that is not a non-empty string`, id }
  }
  if (params !== undefined && !isObject(params)) {
    return { code: INVALID_PARAMS, message: `${where}'s params are not a JSON object`, id }
  }
  if (!Object.hasOwn(v, 'id')) return { kind: 'notification', method: v.method, params }
  if (!validId(rawId)) {
    return {
      code: INVALID_REQUEST,
      message: `${where} has an id that is not a string or an integer (never null)`,
      id: null,
    }
  }
  return { kind: 'request', id: rawId, method: v.method, params }
}

/** A JSON-RPC error response. */
export function errorResponse(id: JsonRpcId | null, code: number, message: string, data?: unknown): object {
  return { jsonrpc: '2.0', id, error: { code, message, ...(data === undefined ? {} : { data }) } }
}

/** A JSON-RPC result response. */
export function resultResponse(id: JsonRpcId, result: unknown): object {
  return { jsonrpc: '2.0', id, result }
}
