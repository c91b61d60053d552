/**
 * A local OpenAI- and Anthropic-compatible model server for tests and
 * benchmarks. It stands in for a provider (nothing real can run here: the
 * providers are remote and keyed), and speaks their wire shapes as
 * protocols.md describes them: JSON bodies with usage, SSE streams whose
 * events are spread over time, usage only where the provider sends it
 * (OpenAI chat only with `stream_options.include_usage`; the Responses API
 * on `response.completed`; Anthropic in `message_start` and a cumulative
 * `message_delta`), both model-list shapes, and both error shapes.
 *
 * It records what it received (method, path, headers, parsed body) so tests
 * can assert which key reached it, and it can hold each stream event until
 * the test releases it, so a test can prove an event reached the client
 * before the next one was sent.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ReceivedRequest {
  method: string
  path: string
  /** The request target as it arrived, query included. */
  target: string
  headers: IncomingMessage['headers']
  /** The raw body as it arrived. */
  raw: Buffer
  /** The body parsed as JSON, or undefined when it was not JSON. */
  body: Record<string, unknown> | undefined
}

export interface LlmUpstreamOptions {
  /** Model ids the list endpoints return (default: gpt-4o, gpt-4o-mini, claude-test-large, claude-test-small; Claude names the SDK does not warn about). */
  models?: string[]
  /** Output tokens per reply: one content event per token (default 5). */
  tokens?: number
  /** Milliseconds between stream events (default 0: written as fast as the socket takes them). */
  intervalMs?: number
  /**
   * Called before stream event `index` (0-based, content events only) is written; the event waits for the
   * promise. Lets a test check the previous event reached the client first.
   */
  gate?: (index: number, req: ReceivedRequest) => Promise<void> | undefined
  /** Input tokens reported for any prompt (default 11). */
  inputTokens?: number
  /** Stop streams after this many content events without usage or a terminal event, and drop the socket. */
  breakAfter?: number
  /** Report usage with counts that are not numbers (a provider bug), in bodies and streams alike. */
  malformedUsage?: boolean
  /** Pad the second content event of a stream to about this many bytes (an event over a proxy's cap). */
  bigEventBytes?: number
}

export interface LlmUpstream {
  readonly url: string
  readonly port: number
  /** Every request, in arrival order. */
  readonly received: ReceivedRequest[]
  /** Streams the server is writing now. */
  readonly openStreams: number
  close(): Promise<void>
}

const DEFAULT_MODELS = ['gpt-4o', 'gpt-4o-mini', 'claude-test-large', 'claude-test-small']
const WORD = 'tok'

export async function startLlmUpstream(options: LlmUpstreamOptions = {}): Promise<LlmUpstream> {
  const received: ReceivedRequest[] = []
  const state = { open: 0 }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      let body: Record<string, unknown> | undefined
      try {
        const parsed: unknown = JSON.parse(raw.toString('utf8'))
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
          body = parsed as Record<string, unknown>
      } catch {
        body = undefined
      }
      const path = (req.url ?? '/').split('?')[0] as string
      const record: ReceivedRequest = {
        method: req.method ?? '',
        path,
        target: req.url ?? '/',
        headers: req.headers,
        raw,
        body,
      }
      received.push(record)
      route(record, res, options, state).catch(() => res.destroy())
    })
  })
  server.keepAliveTimeout = 5_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    get openStreams() {
      return state.open
    },
    async close() {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
}

async function route(
  req: ReceivedRequest,
  res: ServerResponse,
  options: LlmUpstreamOptions,
  state: { open: number },
): Promise<void> {
  const anthropic = req.headers['anthropic-version'] !== undefined
  const key = `${req.method} ${req.path}`
  if (key === 'GET /v1/models')
    return listModels(res, options.models ?? DEFAULT_MODELS, anthropic, req.target)
  const body = req.body
  const known = [
    'POST /v1/chat/completions',
    'POST /v1/completions',
    'POST /v1/responses',
    'POST /v1/embeddings',
    'POST /v1/messages',
    'POST /v1/messages/count_tokens',
  ]
  if (!known.includes(key))
    return sendError(res, 404, anthropic, 'not_found_error', `unknown endpoint ${key}`)
  if (body === undefined || typeof body.model !== 'string')
    return sendError(res, 400, anthropic, 'invalid_request_error', 'model is required')
  const model = body.model
  const models = options.models ?? DEFAULT_MODELS
  if (!models.includes(model))
    return sendError(res, 404, anthropic, 'not_found_error', `The model ${model} does not exist`)
  const inputTokens = options.inputTokens ?? 11
  const tokens = Math.min(options.tokens ?? 5, maxTokensOf(body) ?? Number.POSITIVE_INFINITY)
  switch (req.path) {
    case '/v1/embeddings':
      return sendJson(res, 200, {
        object: 'list',
        data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2, 0.3] }],
        model,
        usage: { prompt_tokens: inputTokens, total_tokens: inputTokens },
      })
    case '/v1/messages/count_tokens':
      return sendJson(res, 200, { input_tokens: inputTokens })
  }
  if (body.stream !== true)
    return sendJson(res, 200, spoil(completion(req.path, model, inputTokens, tokens), options))
  state.open++
  try {
    await stream(req, res, options, model, inputTokens, tokens)
  } finally {
    state.open--
  }
}

function maxTokensOf(body: Record<string, unknown>): number | undefined {
  for (const f of ['max_tokens', 'max_completion_tokens', 'max_output_tokens']) {
    const v = body[f]
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v
  }
  return undefined
}

function listModels(res: ServerResponse, models: string[], anthropic: boolean, target: string): void {
  if (anthropic) {
    // Paged as Anthropic pages it: `limit` 1..1000 (20 by default), then `after_id` or `before_id`.
    const q = new URL(target, 'http://x').searchParams
    const limit = Number(q.get('limit') ?? 20)
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      sendJson(res, 400, { type: 'error', error: { type: 'invalid_request_error', message: 'limit' } })
      return
    }
    const after = q.get('after_id')
    const before = q.get('before_id')
    let page: string[]
    let more: boolean
    if (before !== null) {
      const end = Math.max(0, models.indexOf(before))
      page = models.slice(Math.max(0, end - limit), end)
      more = end - limit > 0
    } else {
      const start = after === null ? 0 : models.indexOf(after) + 1
      page = models.slice(start, start + limit)
      more = start + limit < models.length
    }
    sendJson(res, 200, {
      data: page.map((id) => ({ type: 'model', id, display_name: id, created_at: '2026-01-01T00:00:00Z' })),
      has_more: more,
      first_id: page[0] ?? null,
      last_id: page.at(-1) ?? null,
    })
    return
  }
  sendJson(res, 200, {
    object: 'list',
    data: models.map((id) => ({ id, object: 'model', created: 1_767_225_600, owned_by: 'local' })),
  })
}

function text(tokens: number): string {
  return Array.from({ length: tokens }, () => WORD).join(' ')
}

function completion(path: string, model: string, input: number, output: number): unknown {
  const content = text(output)
  switch (path) {
    case '/v1/chat/completions':
      return {
        id: 'chatcmpl-local',
        object: 'chat.completion',
        created: 1_767_225_600,
        model,
        choices: [
          { index: 0, message: { role: 'assistant', content }, finish_reason: 'stop', logprobs: null },
        ],
        usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
      }
    case '/v1/completions':
      return {
        id: 'cmpl-local',
        object: 'text_completion',
        created: 1_767_225_600,
        model,
        choices: [{ index: 0, text: content, finish_reason: 'stop', logprobs: null }],
        usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
      }
    case '/v1/responses':
      return responseObject(model, 'completed', content, { input, output })
    default:
      return {
        id: 'msg_local',
        type: 'message',
        role: 'assistant',
        model,
        content: [{ type: 'text', text: content }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage: { input_tokens: input, output_tokens: output },
      }
  }
}

function responseObject(
  model: string,
  status: string,
  content: string,
  usage: { input: number; output: number } | undefined,
): unknown {
  return {
    id: 'resp_local',
    object: 'response',
    created_at: 1_767_225_600,
    status,
    model,
    output:
      status === 'completed'
        ? [
            {
              type: 'message',
              id: 'msg_local',
              status: 'completed',
              role: 'assistant',
              content: [{ type: 'output_text', text: content, annotations: [] }],
            },
          ]
        : [],
    usage:
      usage === undefined
        ? null
        : {
            input_tokens: usage.input,
            output_tokens: usage.output,
            total_tokens: usage.input + usage.output,
          },
  }
}

type Frame = { event?: string; data: unknown }

async function stream(
  req: ReceivedRequest,
  res: ServerResponse,
  options: LlmUpstreamOptions,
  model: string,
  input: number,
  output: number,
): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  res.flushHeaders()
  const { head, content, tail } = frames(req, model, input, output)
  if (options.malformedUsage)
    for (const f of [...head, ...tail]) if (typeof f !== 'string') f.data = spoil(f.data, options)
  const big = content[1]
  if (options.bigEventBytes !== undefined && big !== undefined)
    (big.data as Record<string, unknown>).padding = 'x'.repeat(options.bigEventBytes)
  const interval = options.intervalMs ?? 0
  for (const f of head) if (!(await write(res, f, interval))) return
  for (let i = 0; i < content.length; i++) {
    if (options.breakAfter !== undefined && i >= options.breakAfter) {
      res.destroy()
      return
    }
    await options.gate?.(i, req)
    if (!(await write(res, content[i] as Frame, interval))) return
  }
  for (const f of tail) if (!(await write(res, f, interval))) return
  res.end()
}

function frames(
  req: ReceivedRequest,
  model: string,
  input: number,
  output: number,
): { head: Frame[]; content: Frame[]; tail: (Frame | string)[] } {
  const body = req.body ?? {}
  const n = Array.from({ length: output }, (_, i) => i)
  switch (req.path) {
    case '/v1/chat/completions': {
      const chunk = (delta: unknown, finish: string | null) => ({
        data: {
          id: 'chatcmpl-local',
          object: 'chat.completion.chunk',
          created: 1_767_225_600,
          model,
          choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
          ...(includeUsage(body) ? { usage: null } : {}),
        },
      })
      const tail: (Frame | string)[] = [chunk({}, 'stop')]
      if (includeUsage(body))
        tail.push({
          data: {
            id: 'chatcmpl-local',
            object: 'chat.completion.chunk',
            created: 1_767_225_600,
            model,
            choices: [],
            usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
          },
        })
      tail.push('[DONE]')
      return {
        head: [chunk({ role: 'assistant', content: '' }, null)],
        content: n.map((i) => chunk({ content: i === 0 ? WORD : ` ${WORD}` }, null)),
        tail,
      }
    }
    case '/v1/completions': {
      const chunk = (t: string, finish: string | null) => ({
        data: {
          id: 'cmpl-local',
          object: 'text_completion',
          created: 1_767_225_600,
          model,
          choices: [{ index: 0, text: t, finish_reason: finish, logprobs: null }],
        },
      })
      const tail: (Frame | string)[] = [chunk('', 'stop')]
      if (includeUsage(body))
        tail.push({
          data: {
            id: 'cmpl-local',
            object: 'text_completion',
            created: 1_767_225_600,
            model,
            choices: [],
            usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
          },
        })
      tail.push('[DONE]')
      return { head: [], content: n.map((i) => chunk(i === 0 ? WORD : ` ${WORD}`, null)), tail }
    }
    case '/v1/responses': {
      let seq = 0
      const ev = (type: string, rest: Record<string, unknown>): Frame => ({
        event: type,
        data: { type, sequence_number: seq++, ...rest },
      })
      return {
        head: [
          ev('response.created', { response: responseObject(model, 'in_progress', '', undefined) }),
          ev('response.output_item.added', {
            output_index: 0,
            item: { type: 'message', id: 'msg_local', status: 'in_progress', role: 'assistant', content: [] },
          }),
          // The part the deltas add to: the SDK's stream helper needs it announced first.
          ev('response.content_part.added', {
            item_id: 'msg_local',
            output_index: 0,
            content_index: 0,
            part: { type: 'output_text', text: '', annotations: [] },
          }),
        ],
        content: n.map((i) =>
          ev('response.output_text.delta', {
            item_id: 'msg_local',
            output_index: 0,
            content_index: 0,
            delta: i === 0 ? WORD : ` ${WORD}`,
          }),
        ),
        tail: [
          ev('response.output_text.done', {
            item_id: 'msg_local',
            output_index: 0,
            content_index: 0,
            text: text(output),
          }),
          ev('response.content_part.done', {
            item_id: 'msg_local',
            output_index: 0,
            content_index: 0,
            part: { type: 'output_text', text: text(output), annotations: [] },
          }),
          ev('response.output_item.done', {
            output_index: 0,
            item: {
              type: 'message',
              id: 'msg_local',
              status: 'completed',
              role: 'assistant',
              content: [{ type: 'output_text', text: text(output), annotations: [] }],
            },
          }),
          ev('response.completed', {
            response: responseObject(model, 'completed', text(output), { input, output }),
          }),
        ],
      }
    }
    default: {
      const ev = (type: string, rest: Record<string, unknown>): Frame => ({
        event: type,
        data: { type, ...rest },
      })
      return {
        head: [
          ev('message_start', {
            message: {
              id: 'msg_local',
              type: 'message',
              role: 'assistant',
              model,
              content: [],
              stop_reason: null,
              stop_sequence: null,
              usage: { input_tokens: input, output_tokens: 1 },
            },
          }),
          ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
          ev('ping', {}),
        ],
        content: n.map((i) =>
          ev('content_block_delta', {
            index: 0,
            delta: { type: 'text_delta', text: i === 0 ? WORD : ` ${WORD}` },
          }),
        ),
        tail: [
          ev('content_block_stop', { index: 0 }),
          // Cumulative, as Anthropic sends it: the final figure, not an increment.
          ev('message_delta', {
            delta: { stop_reason: 'end_turn', stop_sequence: null },
            usage: { output_tokens: output },
          }),
          ev('message_stop', {}),
        ],
      }
    }
  }
}

/** With `malformedUsage`, every usage count anywhere in `value` becomes a string. */
function spoil(value: unknown, options: LlmUpstreamOptions): unknown {
  if (!options.malformedUsage) return value
  const walk = (v: unknown, inUsage: boolean): unknown => {
    if (Array.isArray(v)) return v.map((x) => walk(x, inUsage))
    if (v !== null && typeof v === 'object')
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, inUsage || k === 'usage')]))
    return inUsage && typeof v === 'number' ? `${v} tokens` : v
  }
  return walk(value, false)
}

function includeUsage(body: Record<string, unknown>): boolean {
  const so = body.stream_options
  return so !== null && typeof so === 'object' && (so as Record<string, unknown>).include_usage === true
}

/** Writes one SSE frame; false when the client went away. */
async function write(res: ServerResponse, frame: Frame | string, intervalMs: number): Promise<boolean> {
  if (intervalMs > 0) await new Promise((r) => setTimeout(r, intervalMs))
  if (res.destroyed) return false
  const wire =
    typeof frame === 'string'
      ? `data: ${frame}\n\n`
      : `${frame.event === undefined ? '' : `event: ${frame.event}\n`}data: ${JSON.stringify(frame.data)}\n\n`
  if (!res.write(wire)) await Promise.race([once(res, 'drain'), once(res, 'close')])
  return !res.destroyed
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const wire = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(wire) })
  res.end(wire)
}

function sendError(
  res: ServerResponse,
  status: number,
  anthropic: boolean,
  type: string,
  message: string,
): void {
  sendJson(
    res,
    status,
    anthropic
      ? { type: 'error', error: { type, message } }
      : { error: { message, type, param: null, code: type } },
  )
}
