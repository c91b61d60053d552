/**
 * The last frame of a stream the sidecar ends early (a budget used up, an
 * event over the cap), in the shape the API's own SDKs already parse as an
 * error rather than a truncated success (protocols.md §12): OpenAI-style, a
 * `data:` chunk carrying an `error` object (the openai SDK throws an APIError
 * on it, in chat, completions and the Responses API alike); Anthropic, an
 * `event: error` frame with `{type: "error", error: {type, message}}`.
 */
import type { SvidecarError } from '../../../errors/index.ts'
import type { LlmApi } from '../call.ts'

export function terminalFrame(api: LlmApi, err: SvidecarError): Buffer {
  if (api.startsWith('anthropic.')) {
    const type = err.status === 429 ? 'rate_limit_error' : 'api_error'
    // The code rides in the message too: the Anthropic SDK shows `error.message`, and has no code field.
    const data = { type: 'error', error: { type, message: `${err.code}: ${err.message}` } }
    return Buffer.from(`event: error\ndata: ${JSON.stringify(data)}\n\n`)
  }
  const data = {
    error: {
      message: err.message,
      type: err.status === 429 ? 'rate_limit_exceeded' : 'server_error',
      param: null,
      code: err.code,
    },
  }
  return Buffer.from(`data: ${JSON.stringify(data)}\n\n`)
}
