// A refusal the sidecar makes before the LLM lens has read the call (here: no SVID yet, so nothing may be sent)
// still reaches the agent's SDK in its provider's error shape, as every refusal on an LLM route does: the
// Anthropic SDK reads `error.type` and the code from `error.details.error_code`, which the sidecar's own shape
// (`{"error":{"code","message"}}`) does not have. The path (or `anthropic-version`) says which shape.

import Anthropic from '@anthropic-ai/sdk'
import { DevWorkloadApi } from '@svidecar/certs'
import OpenAI from 'openai'
import t from 'tap'
import { startGateway } from '../helpers/llm-gateway.ts'

t.test('not ready yet: each SDK gets the refusal in its own shape, with the code', async (t) => {
  // A Workload API that has no SVID for this workload: the sidecar stays not ready.
  const api = await DevWorkloadApi.start({ workloads: [] })
  t.teardown(() => api.close())
  // Port 9 (discard): nothing may reach an upstream anyway.
  const { url } = await startGateway(t, api, 'http://127.0.0.1:9', '', { waitReady: false })
  const caught = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e: unknown) => e,
    )
  const anthropic = new Anthropic({ baseURL: url, apiKey: 'dummy', maxRetries: 0 })
  const message = (await caught(
    anthropic.messages.create({ model: 'claude-test-small', max_tokens: 1, messages: [] }),
  )) as InstanceType<typeof Anthropic.APIError>
  t.type(message, Anthropic.InternalServerError)
  t.equal(message.status, 503)
  t.equal(message.errorCode, 'SVD_IDENTITY_UNAVAILABLE', 'the code where the Anthropic SDK reads it')
  t.equal(message.type, 'overloaded_error', "Anthropic's error type for a 503")
  const models = (await caught(anthropic.models.list())) as InstanceType<typeof Anthropic.APIError>
  t.equal(models.errorCode, 'SVD_IDENTITY_UNAVAILABLE', 'GET /v1/models with anthropic-version too')

  const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'dummy', maxRetries: 0 })
  const chat = (await caught(
    openai.chat.completions.create({ model: 'gpt-4o', messages: [] }),
  )) as InstanceType<typeof OpenAI.APIError>
  t.type(chat, OpenAI.InternalServerError)
  t.equal(chat.code, 'SVD_IDENTITY_UNAVAILABLE')
  t.equal(chat.type, 'server_error', "OpenAI's error shape, type included")
})
