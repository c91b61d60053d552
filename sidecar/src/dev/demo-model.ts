/**
 * The demo's local model server: a tiny OpenAI-compatible API (chat
 * completions, as JSON or as an SSE stream whose chunks are spread over
 * time, and the model list) that answers only callers presenting its key.
 * In the demo that key is held by the agent's sidecar alone, so every answer
 * the agent gets proves the sidecar injected it. Not a model: it replies
 * with a fixed sentence, one word per chunk; a call with `max_tokens` above
 * the sentence's length gets that many words (a long answer, for the budget
 * to cut). It reports usage as OpenAI does (a final usage chunk when
 * `stream_options.include_usage` asks), counting a word as a token.
 */
import { once } from 'node:events'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export const DEMO_MODELS = ['demo-small', 'demo-large']
const WORDS = ['Hello', ' from', ' the', ' demo', ' model.']

export interface DemoModelServer {
  url: string
  server: Server
  close(): Promise<void>
}

export async function startDemoModel(key: string, chunkIntervalMs = 40): Promise<DemoModelServer> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.headers.authorization !== `Bearer ${key}`)
        return error(res, 401, 'invalid_api_key', 'a valid API key is required')
      const path = (req.url ?? '/').split('?')[0]
      if (req.method === 'GET' && path === '/v1/models')
        return json(res, 200, {
          object: 'list',
          data: DEMO_MODELS.map((id) => ({ id, object: 'model', created: 0, owned_by: 'svidecar-demo' })),
        })
      if (req.method !== 'POST' || path !== '/v1/chat/completions')
        return error(res, 404, 'not_found', `unknown endpoint ${req.method} ${path}`)
      let body: {
        model?: unknown
        stream?: unknown
        max_tokens?: unknown
        messages?: unknown
        stream_options?: { include_usage?: unknown }
      }
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body
      } catch {
        return error(res, 400, 'invalid_json', 'the body is not JSON')
      }
      const model = typeof body.model === 'string' ? body.model : ''
      if (!DEMO_MODELS.includes(model)) return error(res, 404, 'model_not_found', `no model ${model}`)
      const words = answer(body.max_tokens)
      const usage = {
        prompt_tokens: promptTokens(body.messages),
        completion_tokens: words.length,
        total_tokens: promptTokens(body.messages) + words.length,
      }
      if (body.stream === true)
        void stream(
          res,
          model,
          words,
          body.stream_options?.include_usage === true ? usage : undefined,
          // A long answer comes faster, so the demo does not wait for the budget to run out.
          words === WORDS ? chunkIntervalMs : chunkIntervalMs / 4,
        )
      else
        json(res, 200, {
          id: 'chatcmpl-demo',
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model,
          choices: [
            { index: 0, message: { role: 'assistant', content: words.join('') }, finish_reason: 'stop' },
          ],
          usage,
        })
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    async close() {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
}

/** The fixed sentence, or for a larger `max_tokens` that many words (up to 1000). */
function answer(maxTokens: unknown): string[] {
  if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens <= WORDS.length) return WORDS
  return Array.from({ length: Math.min(maxTokens, 1000) }, (_, i) => (i === 0 ? 'Once' : ' upon'))
}

/** A word of the prompt's text is a token; a few more for the message framing. */
function promptTokens(messages: unknown): number {
  if (!Array.isArray(messages)) return 0
  let words = 0
  for (const m of messages) {
    const content = (m as { content?: unknown } | null)?.content
    if (typeof content === 'string') words += content.split(/\s+/).filter(Boolean).length + 3
  }
  return words
}

async function stream(
  res: ServerResponse,
  model: string,
  words: readonly string[],
  usage: object | undefined,
  intervalMs: number,
): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  const chunk = (delta: unknown, finish: string | null) =>
    `data: ${JSON.stringify({
      id: 'chatcmpl-demo',
      object: 'chat.completion.chunk',
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    })}\n\n`
  res.write(chunk({ role: 'assistant', content: '' }, null))
  for (const word of words) {
    await new Promise((r) => setTimeout(r, intervalMs))
    if (res.destroyed) return
    res.write(chunk({ content: word }, null))
  }
  res.write(chunk({}, words === WORDS ? 'stop' : 'length'))
  if (usage !== undefined)
    res.write(
      `data: ${JSON.stringify({ id: 'chatcmpl-demo', object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model, choices: [], usage })}\n\n`,
    )
  res.end('data: [DONE]\n\n')
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function error(res: ServerResponse, status: number, code: string, message: string): void {
  json(res, status, { error: { message, type: 'invalid_request_error', param: null, code } })
}
