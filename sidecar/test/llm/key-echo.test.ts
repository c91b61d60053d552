// A provider key never appears in a response (issue 10: "a key never appears in a log, an error, a metric or a
// response"), not even when the provider echoes it back: a misconfigured or self-hosted server answering 401
// with "invalid key <the key>" in its error body, or in a header such as `www-authenticate`, would otherwise
// hand the agent the key the sidecar holds for it. The body arrives in small pieces, the key split across
// them. Read through both official SDKs and raw, and the sidecar's log and audit lines stay free of it too.
import { createServer } from 'node:http'
import { Writable } from 'node:stream'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import t, { type Test } from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { startLlmSidecar } from '../helpers/llm-sidecar.ts'

/** A provider that rejects every key it gets by quoting it back, in the body (written a few bytes at a time) and a header. */
async function echoingProvider(t: Test) {
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', async () => {
      const anthropic = req.headers['anthropic-version'] !== undefined
      const key = anthropic ? String(req.headers['x-api-key']) : String(req.headers.authorization).slice(7)
      const message = `Incorrect API key provided: ${key}. Check the key ${key} and try again.`
      const body = JSON.stringify(
        anthropic
          ? { type: 'error', error: { type: 'authentication_error', message } }
          : { error: { message, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } },
      )
      res.writeHead(401, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'www-authenticate': `Bearer error="invalid_token", error_description="bad key ${key}"`,
      })
      // Seven bytes at a time, each its own write: the key never arrives in one piece.
      for (let i = 0; i < body.length; i += 7) {
        res.write(body.slice(i, i + 7))
        await new Promise((r) => setImmediate(r))
      }
      res.end()
    })
  })
  server.listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  t.teardown(() => new Promise((r) => server.close(r)))
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

t.test('a provider that echoes the key back: the agent never sees it', async (t) => {
  let audit = ''
  const s = await startLlmSidecar(t, {
    upstreamUrl: await echoingProvider(t),
    auditStdout: new Writable({
      write(chunk, _encoding, done) {
        audit += String(chunk)
        done()
      },
    }),
  })
  const keys = [s.keys.openai, s.keys.anthropic]
  const openai = new OpenAI({ baseURL: `${s.outbound}/v1`, apiKey: 'dummy', maxRetries: 0 })
  const anthropic = new Anthropic({ baseURL: s.outbound, apiKey: 'dummy', maxRetries: 0 })
  const seen: string[] = []
  const caught = async (p: Promise<unknown>) => {
    const err = (await p.then(
      () => undefined,
      (e: unknown) => e,
    )) as { status?: number; message: string; error?: unknown; headers?: Headers } | undefined
    seen.push(
      err?.message ?? '',
      JSON.stringify(err?.error ?? null),
      JSON.stringify([...(err?.headers ?? [])]),
    )
    return err
  }

  const chat = await caught(openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [] }))
  t.type(chat, OpenAI.AuthenticationError, "the provider's 401 still reaches the agent as one")
  t.match(chat?.message, /Incorrect API key provided: \[redacted\]/, 'the message says what happened')
  const message = await caught(
    anthropic.messages.create({ model: 'claude-test-small', max_tokens: 1, messages: [] }),
  )
  t.type(message, Anthropic.AuthenticationError)
  t.equal(message?.status, 401)

  const raw = await fetch(`${s.outbound}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"model":"gpt-4o-mini","messages":[]}',
  })
  const text = await raw.text()
  seen.push(text, JSON.stringify([...raw.headers]))
  t.equal(raw.status, 401)
  t.same(JSON.parse(text), {
    error: {
      message: 'Incorrect API key provided: [redacted]. Check the key [redacted] and try again.',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_api_key',
    },
  })
  t.equal(
    raw.headers.get('www-authenticate'),
    'Bearer error="invalid_token", error_description="bad key [redacted]"',
  )

  await waitFor(() => (audit.match(/"llm\.usage"/g) ?? []).length === 3, 'the usage audit lines')
  for (const k of keys) {
    t.notOk(
      seen.some((x) => x.includes(k)),
      'no response the agent got holds the key',
    )
    t.notOk(s.logs.text.includes(k), 'nor the log')
    t.notOk(audit.includes(k), 'nor an audit line')
  }
})
