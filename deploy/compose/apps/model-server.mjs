// A stand-in for a local OpenAI-compatible model server (vLLM, Ollama, llama.cpp's server answer the same
// routes): GET /v1/models and POST /v1/chat/completions, JSON or an SSE stream, with usage. It "answers" by
// echoing the last user message, which is all the demo needs to show traffic passing. Listens on $PORT (8000).
import { createServer } from 'node:http'

const port = Number(process.env.PORT ?? 8000)
const host = process.env.HOST ?? '127.0.0.1'
const MODELS = ['demo-small', 'demo-large']

function json(res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function error(res, status, message, type, code) {
  json(res, status, { error: { message, type, param: null, code } })
}

async function readJson(req) {
  const chunks = []
  for await (const chunk of req) chunks.push(chunk)
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://model')
  if (req.method === 'GET' && url.pathname === '/v1/models') {
    json(res, 200, {
      object: 'list',
      data: MODELS.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'svidecar-demo' })),
    })
    return
  }
  if (req.method !== 'POST' || url.pathname !== '/v1/chat/completions') {
    error(res, 404, `no route ${req.method} ${url.pathname}`, 'invalid_request_error', 'not_found')
    return
  }
  let body
  try {
    body = await readJson(req)
  } catch {
    error(res, 400, 'the body is not JSON', 'invalid_request_error', null)
    return
  }
  if (!MODELS.includes(body.model)) {
    error(res, 404, `The model '${body.model}' does not exist`, 'invalid_request_error', 'model_not_found')
    return
  }
  const last = [...(body.messages ?? [])].reverse().find((m) => m.role === 'user')
  const content = `You said: ${typeof last?.content === 'string' ? last.content : '(nothing)'}`
  const promptTokens = JSON.stringify(body.messages ?? []).length >> 2
  const completionTokens = content.length >> 2
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  }
  const id = `chatcmpl-${Date.now().toString(36)}`
  const created = Math.floor(Date.now() / 1000)
  if (body.stream === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    const chunk = (delta, finish, extra = {}) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`
    res.write(chunk({ role: 'assistant', content: '' }, null))
    for (const word of content.split(/(?<= )/)) res.write(chunk({ content: word }, null))
    res.write(chunk({}, 'stop'))
    // OpenAI sends usage in a last chunk with empty choices when stream_options.include_usage is set.
    if (body.stream_options?.include_usage === true)
      res.write(
        `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [], usage })}\n\n`,
      )
    res.end('data: [DONE]\n\n')
    return
  }
  json(res, 200, {
    id,
    object: 'chat.completion',
    created,
    model: body.model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage,
  })
})

server.listen(port, host, () => {
  const address = server.address()
  process.stdout.write(`model server listening on ${address.address}:${address.port}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
