// Refusals the Anthropic SDK meets besides a denied call, each in Anthropic's error shape with the code where
// the SDK reads it (`errorCode`): one denied model's description (GET /v1/models/{id}), an Anthropic endpoint
// the lens does not forward (Message Batches), a model that is not a string. Nothing reaches the provider.
import Anthropic from '@anthropic-ai/sdk'
import t from 'tap'
import { startLlmSidecar } from '../helpers/llm-sidecar.ts'

t.test('Anthropic SDK: refusals are its own error classes with the code', async (t) => {
  const s = await startLlmSidecar(t)
  const anthropic = new Anthropic({ baseURL: s.outbound, apiKey: 'dummy', maxRetries: 0 })
  const caught = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e: unknown) => e as InstanceType<typeof Anthropic.APIError>,
    )

  const model = await caught(anthropic.models.retrieve('claude-test-large'))
  t.type(model, Anthropic.PermissionDeniedError, 'a denied model is not described')
  t.equal(model?.errorCode, 'SVD_POLICY_DENIED')
  t.equal(model?.type, 'permission_error')

  const batches = await caught(anthropic.messages.batches.list())
  t.type(batches, Anthropic.NotFoundError, 'an endpoint the lens does not forward')
  t.equal(batches?.errorCode, 'SVD_LLM_ENDPOINT_UNKNOWN')
  t.equal(batches?.type, 'not_found_error')

  const notString = await caught(
    anthropic.messages.create({
      model: 42 as unknown as string,
      max_tokens: 1,
      messages: [{ role: 'user', content: 'hi' }],
    }),
  )
  t.type(notString, Anthropic.BadRequestError, 'a model that is not a string')
  t.equal(notString?.errorCode, 'SVD_LLM_REQUEST_INVALID')
  t.equal(notString?.type, 'invalid_request_error')

  t.equal(s.upstream.received.length, 0, 'nothing reached the provider')
})
