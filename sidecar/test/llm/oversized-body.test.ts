// A body over the LLM lens's cap, sent by the official SDKs as an agent sends a large prompt: the SDK must see
// the sidecar's 413 in its provider's error shape (openai: an APIError with status 413 and the code;
// Anthropic: ContentTooLargeError, `request_too_large`), not a connection reset because the sidecar answered and
// closed while the upload was still under way. Nothing reaches the provider.
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import t from 'tap'
import { startLlmSidecar } from '../helpers/llm-sidecar.ts'

const LIMIT = 64 * 1024

t.test('an oversized prompt is a 413 each SDK reports, every time', async (t) => {
  const s = await startLlmSidecar(t, { llm: `  bodyLimit: ${LIMIT}\n` })
  const openai = new OpenAI({ baseURL: `${s.outbound}/v1`, apiKey: 'dummy', maxRetries: 0 })
  const anthropic = new Anthropic({ baseURL: s.outbound, apiKey: 'dummy', maxRetries: 0 })
  // Large enough that the upload is still going when the answer comes (several MB against a 64 KiB cap).
  const big = 'x'.repeat(8 * 1024 * 1024)
  for (let i = 0; i < 5; i++) {
    const err = await openai.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: big }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    t.notOk(err instanceof OpenAI.APIConnectionError, `openai #${i}: not a connection error`)
    t.equal((err as InstanceType<typeof OpenAI.APIError>).status, 413, `openai #${i}: 413`)
    t.equal((err as InstanceType<typeof OpenAI.APIError>).code, 'SVD_REQUEST_BODY_TOO_LARGE')

    const aErr = await anthropic.messages
      .create({ model: 'claude-test-small', max_tokens: 1, messages: [{ role: 'user', content: big }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    t.type(aErr, Anthropic.ContentTooLargeError, `anthropic #${i}: ContentTooLargeError`)
    t.equal((aErr as InstanceType<typeof Anthropic.APIError>).type, 'request_too_large')
    t.equal((aErr as InstanceType<typeof Anthropic.APIError>).errorCode, 'SVD_REQUEST_BODY_TOO_LARGE')
  }
  t.equal(s.upstream.received.length, 0, 'nothing reached the provider')
})
