// The official SDKs run on fetch, which asks for compressed answers (`Accept-Encoding: gzip, deflate, …`), and
// providers compress when asked. The token meter reads the provider's bytes (the usage of a JSON body, the SSE
// events it drops or ends a stream between), so for a metered call the sidecar asks the provider for an
// uncompressed answer: the usage is counted exactly, the hidden usage chunk is hidden, and a cut's terminal
// frame is never written into a compressed stream. A stand-in provider that compresses as real ones do (the
// local model server never compresses).
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { constants, createGzip, gzipSync } from 'node:zlib'
import OpenAI from 'openai'
import t from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { type LlmUsageEvent, on } from '../../src/observe/events.ts'
import { startDevApi, startGateway } from '../helpers/llm-gateway.ts'

const USAGE = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 }

function chunk(o: unknown): string {
  return `data: ${JSON.stringify(o)}\n\n`
}

t.test(
  'a provider that compresses when asked: usage still counted exactly, usage chunk still hidden',
  async (t) => {
    const seen: IncomingHttpHeaders[] = []
    const provider = createServer((req, res) => {
      const parts: Buffer[] = []
      req.on('data', (d: Buffer) => parts.push(d))
      req.on('end', () => {
        seen.push(req.headers)
        const body = JSON.parse(Buffer.concat(parts).toString()) as { stream?: boolean }
        const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))
        if (body.stream !== true) {
          const json = JSON.stringify({
            id: 'c',
            object: 'chat.completion',
            created: 1,
            model: 'gpt-4o',
            choices: [{ index: 0, message: { role: 'assistant', content: 'a b c' }, finish_reason: 'stop' }],
            usage: USAGE,
          })
          res.writeHead(200, {
            'content-type': 'application/json',
            ...(gzip ? { 'content-encoding': 'gzip' } : {}),
          })
          res.end(gzip ? gzipSync(json) : json)
          return
        }
        const base = { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o' }
        const events = [
          ...['a', ' b', ' c'].map((w) =>
            chunk({
              ...base,
              choices: [{ index: 0, delta: { content: w }, finish_reason: null }],
              usage: null,
            }),
          ),
          chunk({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: null }),
          chunk({ ...base, choices: [], usage: USAGE }),
          'data: [DONE]\n\n',
        ]
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          ...(gzip ? { 'content-encoding': 'gzip' } : {}),
        })
        if (!gzip) {
          for (const e of events) res.write(e)
          res.end()
          return
        }
        // Flushed per event, as a streaming server that compresses does.
        const z = createGzip({ flush: constants.Z_SYNC_FLUSH })
        z.pipe(res)
        for (const e of events) z.write(e)
        z.end()
      })
    })
    provider.listen(0, '127.0.0.1')
    await once(provider, 'listening')
    t.teardown(() => provider.close())
    const gw = await startGateway(
      t,
      await startDevApi(t),
      `http://127.0.0.1:${(provider.address() as AddressInfo).port}`,
    )
    const events: LlmUsageEvent[] = []
    t.teardown(on('llmUsage', (e) => events.push(e)))
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'dummy', maxRetries: 0 })
    const messages = [{ role: 'user' as const, content: 'hi' }]

    const done = await openai.chat.completions.create({ model: 'gpt-4o', messages })
    t.equal(done.choices[0]?.message.content, 'a b c')
    await waitFor(() => events.length === 1, 'usage of the JSON answer')
    t.match(events[0], { inputTokens: 7, outputTokens: 3, estimated: false }, 'exact, from the provider')

    const stream = await openai.chat.completions.create({ model: 'gpt-4o', messages, stream: true })
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = []
    for await (const c of stream) chunks.push(c)
    t.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'a b c')
    t.ok(
      chunks.every((c) => c.choices.length > 0),
      'the usage chunk the client did not ask for was hidden',
    )
    await waitFor(() => events.length === 2, 'usage of the stream')
    t.match(events[1], { inputTokens: 7, outputTokens: 3, estimated: false })

    t.ok(
      seen.every((h) => h['accept-encoding'] === 'identity'),
      'the provider was asked for uncompressed answers',
    )
  },
)
