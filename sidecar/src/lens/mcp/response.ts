/**
 * The response side of the MCP lens: the answers to this POST's list
 * requests (correlated by JSON-RPC id) are filtered, and on the agent's
 * side a stateless-era `input_required` answer has its embedded requests
 * screened (input-requests.ts), whether they come as
 * the JSON body or as events of an SSE stream. A JSON body is held (under
 * the cap) and rewritten whole, without its Content-Length; in a stream
 * only the events that answer a list request are rewritten, and every other
 * event is written the moment its block is complete. A filtered response
 * is marked private to caches. What cannot be read under the cap is not
 * forwarded: the list requests get a JSON-RPC error instead.
 */
import { StringDecoder } from 'node:string_decoder'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { SvidecarError } from '../../errors/index.ts'
import type { ResponseHead, ResponseWrapper } from '../../pipeline/stage.ts'
import { type ClientRequest, clientRequestOf, mayHoldClientRequest } from './client-requests.ts'
import { filterList, type KeepItem, LIST_ITEMS } from './filter.ts'
import { spliceList } from './filter-text.ts'
import type { MrtrMethod } from './input-requests.ts'
import { errorResponse, INTERNAL_ERROR, type JsonRpcId } from './jsonrpc.ts'
import { ListScanCache } from './list-scan.ts'
import { LIST_METHODS, type ListMethod } from './targets.ts'

/**
 * A request whose answer the lens reads: a list to filter, a task-augmented request whose task is bound to the
 * caller (`task`), `tasks/list` (filtered to the caller's tasks), or (agent's side, stateless era) one that may
 * ask for input.
 */
export interface PendingAnswer {
  readonly id: JsonRpcId
  readonly method: ListMethod | MrtrMethod | 'tasks/list' | (string & {})
  readonly task?: true
}

/** The requests of one POST whose answers are read, by id. */
export type PendingLists = ReadonlyMap<string, PendingAnswer>

const isList = (method: string): method is ListMethod => LIST_METHODS.has(method)

/** The list method among the pending answers, if any (what a list item's decision names as its method). */
export function listingOf(pending: PendingLists): ListMethod | undefined {
  for (const p of pending.values()) if (isList(p.method)) return p.method
  return undefined
}

export function idKey(id: JsonRpcId): string {
  return `${typeof id}:${id}`
}

const EMPTY = Buffer.alloc(0)

function mediaType(head: ResponseHead): string {
  const ct = head.headers['content-type']
  return (Array.isArray(ct) ? ct[0] : ct)?.split(';')[0]?.trim().toLowerCase() ?? ''
}

export function listFilterWrapper(
  head: ResponseHead,
  pending: PendingLists,
  keep: KeepItem,
  maxBytes: number,
  hooks: StreamHooks = {},
): ResponseWrapper | undefined {
  if (head.status < 200 || head.status >= 300) return undefined
  const type = mediaType(head)
  if (pending.size === 0 && hooks.anyList === undefined) {
    // Only a stream can carry the server's own requests or resource updates; a JSON answer passes untouched.
    return (hooks.clientRequest !== undefined || hooks.resourceUpdated !== undefined) &&
      type === 'text/event-stream'
      ? sseWrapper(head, pending, keep, maxBytes, hooks)
      : undefined
  }
  const encoding = head.headers['content-encoding']
  if (encoding !== undefined && encoding !== 'identity') return encodedWrapper(pending)
  if (type === 'application/json') return jsonWrapper(pending, keep, maxBytes, hooks)
  if (type === 'text/event-stream') return sseWrapper(head, pending, keep, maxBytes, hooks)
  return undefined
}

/**
 * One JSON-RPC message with its list result filtered when it answers a pending list request, or replaced by
 * the refusal `hooks.inputRequired` gives for an `input_required` answer.
 */
function rewriteMessage(
  message: unknown,
  pending: PendingLists,
  keep: KeepItem,
  hooks: StreamHooks,
): unknown | Promise<unknown> {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) return message
  const m = message as Record<string, unknown>
  const id = m.id
  if ((typeof id !== 'string' && typeof id !== 'number') || !Object.hasOwn(m, 'result')) return message
  const list = pending.get(idKey(id))
  if (list === undefined) return hooks.anyList === undefined ? message : filterShaped(m, hooks.anyList)
  hooks.consume?.(idKey(id))
  if (list.task === true) hooks.taskCreated?.(m.result)
  if (list.method === 'tasks/list') {
    const own = filterTasks(m.result, hooks.ownsTask)
    return own === undefined ? message : { ...m, result: own }
  }
  if (!isList(list.method)) {
    const refusal = hooks.inputRequired?.(id, m.result)
    if (refusal instanceof Promise) return refusal.then((r) => r ?? message)
    return refusal ?? message
  }
  // Where ids are reused (a long-lived channel), this answer may be to another list the client sent with this id.
  if (hooks.anyList !== undefined) return filterShaped(m, hooks.anyList)
  const filtered = filterList(list.method, m.result, keep)
  if (filtered instanceof Promise)
    return filtered.then((r) => (r === undefined ? message : { ...m, result: r }))
  return filtered === undefined ? message : { ...m, result: filtered }
}

const LIST_KINDS = Object.keys(LIST_ITEMS) as ListMethod[]

/** The lists a result carries the array of (`tools`, `prompts`, `resources`, `resourceTemplates`). */
function listShapes(result: unknown): ListMethod[] {
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return []
  return LIST_KINDS.filter((method) =>
    Array.isArray((result as Record<string, unknown>)[LIST_ITEMS[method].key]),
  )
}

/** The first list a result is shaped like, if any. */
export function listShapeOf(result: unknown): ListMethod | undefined {
  return listShapes(result)[0]
}

/**
 * A result filtered as every list it carries the array of (`tools`, `prompts`, `resources`,
 * `resourceTemplates`), for an answer whose request the lens cannot tell.
 */
function filterShaped(
  m: Record<string, unknown>,
  keepAs: (method: ListMethod) => KeepItem,
): unknown | Promise<unknown> {
  const result = m.result
  const shapes = listShapes(result)
  if (shapes.length === 0) return m
  let out: unknown = result
  const from = (i: number): unknown | Promise<unknown> => {
    for (; i < shapes.length; i++) {
      const method = shapes[i] as ListMethod
      const filtered = filterList(method, out, keepAs(method))
      if (filtered instanceof Promise) {
        const next = i + 1
        return filtered.then((r) => {
          if (r !== undefined) out = r
          return from(next)
        })
      }
      if (filtered !== undefined) out = filtered
    }
    return out === result ? m : { ...m, result: out }
  }
  return from(0)
}

/**
 * Large list answers seen lately, recognised again without a scan (the same text with another id). A pure
 * function of the bytes, so one cache serves every listener and identity.
 */
const scans = new ListScanCache(8 << 20, 16 << 10)

/**
 * A single answer to one of this POST's list requests, filtered as text without parsing it whole
 * (filter-text.ts); undefined when it is anything else or the scanner gives up, and the answer is parsed.
 */
function scannedAnswer(
  text: Buffer,
  pending: PendingLists,
  keep: KeepItem,
  hooks: StreamHooks,
): Buffer | Promise<Buffer> | undefined {
  const listing = listingOf(pending)
  if (listing === undefined) return undefined
  const spec = LIST_ITEMS[listing]
  const scan = scans.scan(text, spec.key, spec.field)
  if (scan === undefined) return undefined
  const key = idKey(scan.id)
  const list = pending.get(key)
  if (list === undefined || list.method !== listing || list.task === true) return undefined
  hooks.consume?.(key)
  return spliceList(text, scan, listing, keep)
}

function tooLarge(pending: PendingLists, maxBytes: number): object[] {
  return [...pending.values()].map((p) =>
    errorResponse(
      p.id,
      INTERNAL_ERROR,
      `the ${p.method} result is over the ${maxBytes} bytes the sidecar ${isList(p.method) ? 'filters' : 'checks'}`,
    ),
  )
}

/**
 * A compressed answer cannot be read without inflating it, and the lens asked for `identity`: what the upstream
 * sent anyway is not forwarded unread; the list requests get an error.
 */
function encodedWrapper(pending: PendingLists): ResponseWrapper {
  return {
    headers: {
      remove: ['content-length', 'content-encoding'],
      set: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    },
    data: () => EMPTY,
    end() {
      const errors = [...pending.values()].map((p) =>
        errorResponse(
          p.id,
          INTERNAL_ERROR,
          `the ${p.method} result came compressed; the sidecar cannot filter it`,
        ),
      )
      return Buffer.from(JSON.stringify(errors.length === 1 ? errors[0] : errors))
    },
  }
}

function jsonWrapper(
  pending: PendingLists,
  keep: KeepItem,
  maxBytes: number,
  hooks: StreamHooks,
): ResponseWrapper {
  const chunks: Buffer[] = []
  let size = 0
  let over = false
  return {
    // A list filtered for one identity must not be shared from a cache; other answers keep their own headers.
    headers:
      listingOf(pending) === undefined
        ? { remove: ['content-length'] }
        : { remove: ['content-length'], set: { 'cache-control': 'private' } },
    data(chunk) {
      if (over) return EMPTY
      size += chunk.length
      if (size > maxBytes) {
        over = true
        chunks.length = 0
        return EMPTY
      }
      chunks.push(chunk)
      return EMPTY
    },
    end() {
      if (over) {
        const errors = tooLarge(pending, maxBytes)
        return Buffer.from(JSON.stringify(errors.length === 1 ? errors[0] : errors))
      }
      const original = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)
      const scanned = scannedAnswer(original, pending, keep, hooks)
      if (scanned !== undefined) return scanned
      let doc: unknown
      try {
        doc = JSON.parse(original.toString('utf8'))
      } catch {
        // Not JSON: nothing in it can be a list result, and the client will refuse it as it is.
        return original
      }
      const out = Array.isArray(doc)
        ? doc.map((m) => rewriteMessage(m, pending, keep, hooks))
        : rewriteMessage(doc, pending, keep, hooks)
      // Unchanged messages keep their bytes: only a filtered answer is written anew.
      const write = (m: unknown) =>
        (Array.isArray(m) && Array.isArray(doc) && m.every((x, i) => x === doc[i])) || m === doc
          ? original
          : Buffer.from(JSON.stringify(m))
      if (Array.isArray(out) && out.some((m) => m instanceof Promise)) return Promise.all(out).then(write)
      if (out instanceof Promise) return out.then(write)
      return write(out)
    },
  }
}

/** An SSE event block as the client will read it again. */
function serializeEvent(event: {
  id?: string | undefined
  event?: string | undefined
  data: string
}): string {
  let out = ''
  if (event.id !== undefined) out += `id: ${event.id}\n`
  if (event.event !== undefined) out += `event: ${event.event}\n`
  for (const line of event.data.split('\n')) out += `data: ${line}\n`
  return `${out}\n`
}

/** What a stream needs beyond filtering the answers to list requests. */
export interface StreamHooks {
  /**
   * A request the server makes of the agent (agent's sidecar only): true delivers it, false drops the event
   * (the hook has answered the server).
   */
  clientRequest?(request: ClientRequest): boolean | Promise<boolean>
  /** The `endpoint` event's data (the URI the client POSTs to). */
  onEndpoint?(data: string): void
  /** Answers arrive over the stream's life: a matched list request is done with. */
  consume?(key: string): void
  /**
   * The result answering a pending tools/call, prompts/get or resources/read (agent's side, stateless era):
   * the message to deliver instead of it (a refusal), or undefined to deliver it as it is.
   */
  inputRequired?(id: JsonRpcId, result: unknown): object | undefined | Promise<object | undefined>
  /**
   * Where a request id does not say which request an answer is for, every list answer is filtered as each list it
   * is shaped like: a resumed stream replays answers to other POSTs' requests, and a long-lived channel (HTTP+SSE,
   * WebSocket) carries answers to ids the client may have used for more than one request.
   */
  anyList?(method: ListMethod): KeepItem
  /** A `notifications/resources/updated` for `uri` on the stream: true delivers it, false drops it. */
  resourceUpdated?(uri: string): boolean | Promise<boolean>
  /** The answer to a task-augmented request: the task it created is bound to the caller. */
  taskCreated?(result: unknown): void
  /** Whether a task listed by `tasks/list` is the caller's (others are left out). */
  ownsTask?(taskId: string): boolean
}

/** A `tasks/list` result with only the caller's tasks; undefined when nothing is left out. */
function filterTasks(
  result: unknown,
  owns: ((taskId: string) => boolean) | undefined,
): Record<string, unknown> | undefined {
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return undefined
  const r = result as Record<string, unknown>
  if (!Array.isArray(r.tasks)) return undefined
  const mine = r.tasks.filter((task: unknown) => {
    const taskId = (task as Record<string, unknown> | null)?.taskId
    return typeof taskId === 'string' && owns?.(taskId) === true
  })
  return mine.length === r.tasks.length ? undefined : { ...r, tasks: mine }
}

/** The URI a `notifications/resources/updated` message names, if the message is one. */
function updatedUri(doc: unknown): string | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined
  const m = doc as Record<string, unknown>
  if (m.method !== 'notifications/resources/updated' || Object.hasOwn(m, 'id')) return undefined
  const uri = (m.params as Record<string, unknown> | null | undefined)?.uri
  // A malformed update names no resource the client can act on; an empty string keeps it to the decision.
  return typeof uri === 'string' ? uri : ''
}

/**
 * The long-lived stream of the HTTP+SSE transport (2024-11-05): every answer arrives here, so the list
 * requests POSTed on its session are matched as they come (`pending` is filled by those POSTs).
 */
export function sseStreamWrapper(
  head: ResponseHead,
  pending: PendingLists,
  keep: KeepItem,
  maxBytes: number,
  hooks: StreamHooks,
): ResponseWrapper | undefined {
  if (head.status < 200 || head.status >= 300 || mediaType(head) !== 'text/event-stream') return undefined
  return sseWrapper(head, pending, keep, maxBytes, hooks)
}

function sseWrapper(
  head: ResponseHead,
  pending: PendingLists,
  keep: KeepItem,
  maxBytes: number,
  hooks: StreamHooks = {},
): ResponseWrapper {
  // Events are written in order; an event waiting for a decision service holds the ones after it.
  let out: Array<string | Promise<string>> = []
  let pendingId: string | undefined
  let cut = false
  // A multi-byte character split across chunks is joined before the parser sees it.
  const decoder = new StringDecoder('utf8')
  const flushId = () => {
    if (pendingId === undefined) return
    // An id-only block (a resumption point): the client must still see it.
    out.push(`id: ${pendingId}\n\n`)
    pendingId = undefined
  }
  const onEvent = (e: EventSourceMessage) => {
    if (cut) return
    // The parser enforces the cap on what it holds between chunks; an event that came whole in one chunk is
    // held to it here, so where the upstream's writes happened to split the stream changes nothing.
    if (e.data.length > maxBytes) {
      cut = true
      return
    }
    // onId ran just before for this block's own id; without one, a pending id is an earlier id-only block's.
    if (e.id === undefined) flushId()
    else pendingId = undefined
    if (e.event === 'endpoint') hooks.onEndpoint?.(e.data)
    const isMessage = e.event === undefined || e.event === 'message'
    let doc: unknown
    const asks = hooks.clientRequest
    const updates = hooks.resourceUpdated
    // A list answer is filtered as text, unless the event could also be a request or an update for its hooks.
    if (
      isMessage &&
      e.data.includes('"result"') &&
      (asks === undefined || !mayHoldClientRequest(e.data)) &&
      (updates === undefined || !e.data.includes('notifications/resources/updated'))
    ) {
      const scanned = scannedAnswer(Buffer.from(e.data), pending, keep, hooks)
      if (scanned !== undefined) {
        out.push(
          scanned instanceof Promise
            ? scanned.then((b) => serializeEvent({ ...e, data: b.toString('utf8') }))
            : serializeEvent({ ...e, data: scanned.toString('utf8') }),
        )
        return
      }
    }
    // A key or method spelled with escapes is still that key or method to the client: text with a backslash is read.
    if (
      isMessage &&
      (e.data.includes('"result"') ||
        e.data.includes('\\') ||
        (asks !== undefined && mayHoldClientRequest(e.data)) ||
        (updates !== undefined && e.data.includes('notifications/resources/updated')))
    ) {
      try {
        doc = JSON.parse(e.data)
      } catch {
        doc = undefined
      }
    }
    if (Array.isArray(doc) && doc.length > 0) {
      // 2025-03-26 lets a server batch the messages of one event: each goes on as its own event (the same messages
      // to the client), read like any other; the last carries the block's id, the resumption point after them all.
      const last = doc.length - 1
      for (let i = 0; i <= last; i++) {
        onEvent({ event: e.event, id: i === last ? e.id : undefined, data: JSON.stringify(doc[i]) })
      }
      return
    }
    // A server's request of the agent, or a resource update, is delivered or dropped as its hook decides.
    const request = doc === undefined || asks === undefined ? undefined : clientRequestOf(doc)
    const updated = request !== undefined || updates === undefined ? undefined : updatedUri(doc)
    const deliver =
      request !== undefined ? asks?.(request) : updated !== undefined ? updates?.(updated) : undefined
    if (deliver !== undefined) {
      const block = serializeEvent(e)
      // A dropped event still leaves its resumption point.
      const dropped = e.id === undefined ? '' : `id: ${e.id}\n\n`
      out.push(
        deliver instanceof Promise
          ? deliver.then((yes) => (yes ? block : dropped))
          : deliver
            ? block
            : dropped,
      )
      return
    }
    if (doc === undefined) {
      out.push(serializeEvent(e))
      return
    }
    const rewritten = rewriteMessage(doc, pending, keep, hooks)
    if (rewritten === doc) {
      out.push(serializeEvent(e))
      return
    }
    out.push(
      rewritten instanceof Promise
        ? rewritten.then((m) => serializeEvent({ ...e, data: JSON.stringify(m) }))
        : serializeEvent({ ...e, data: JSON.stringify(rewritten) }),
    )
  }
  const parser = createParser({
    maxBufferSize: maxBytes,
    onId: (id) => {
      flushId()
      pendingId = id
    },
    onEvent,
    onRetry: (ms) => {
      flushId()
      out.push(`retry: ${ms}\n\n`)
    },
    onComment: (comment) => {
      flushId()
      out.push(`:${comment}\n\n`)
    },
    onError: () => {
      // An event over the cap cannot be checked: the list requests get an error and the stream ends here.
      cut = true
    },
  })
  const drain = (): Buffer | Promise<Buffer> => {
    flushId()
    const parts = out
    out = []
    if (parts.some((p) => p instanceof Promise)) {
      return Promise.all(parts).then((all) => Buffer.from(all.join('')))
    }
    return parts.length === 0 ? EMPTY : Buffer.from(parts.join(''))
  }
  const cutEvents = () =>
    Buffer.from(
      tooLarge(pending, maxBytes)
        .map((m) => serializeEvent({ event: 'message', data: JSON.stringify(m) }))
        .join(''),
    )
  let cutWritten = false
  const afterCut = (): Buffer => {
    if (cutWritten) return EMPTY
    cutWritten = true
    return cutEvents()
  }
  // Past an event it cannot check, the stream is ended for the client (and the upstream request closed): a
  // client left waiting on a stream that sends nothing more would only learn of it when the server hung up.
  const endHere = (ready: Buffer): Buffer => {
    const last = Buffer.concat([ready, afterCut()])
    if (head.cut === undefined) return last
    head.cut(
      last,
      new SvidecarError(
        'SVD_UPSTREAM_PROTOCOL',
        `the upstream sent an MCP event larger than the ${maxBytes} bytes the sidecar checks; the stream was ended there`,
        { reason: 'SSE_EVENT_TOO_LARGE' },
      ),
    )
    return EMPTY
  }
  return {
    headers: {
      remove: ['content-length'],
      set: { 'cache-control': 'private, no-cache', 'x-accel-buffering': 'no' },
    },
    data(chunk) {
      if (cut) return afterCut()
      try {
        parser.feed(decoder.write(chunk))
      } catch {
        cut = true
      }
      const ready = drain()
      if (!cut) return ready
      if (ready instanceof Promise) return ready.then(endHere)
      return endHere(ready)
    },
    end() {
      if (cut) return afterCut()
      return drain()
    },
  }
}
