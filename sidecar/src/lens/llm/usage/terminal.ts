/**
 * The last frame of a stream the sidecar ends early (a budget used up, an
 * event over the cap), in the shape the API's own SDKs already parse as an
 * error rather than a truncated success (protocols.md §12): OpenAI-style, a
 * `data:` chunk carrying an `error` object (the openai SDK throws an APIError
 * on it, in chat, completions and the Responses API alike); Anthropic, an
 * `event: error` frame. The error object is the provider-shaped one the
 * sidecar answers refusals with (forwarder/respond.ts), code included.
 */
import type { SvidecarError } from '../../../errors/index.ts'
import { errorBody } from '../../../forwarder/respond.ts'
import type { LlmApi } from '../call.ts'

export function terminalFrame(api: LlmApi, err: SvidecarError): Buffer {
  if (api.startsWith('anthropic.'))
    return Buffer.from(`event: error\ndata: ${errorBody(err, 'anthropic').body}\n\n`)
  return Buffer.from(`data: ${errorBody(err, 'openai').body}\n\n`)
}
