/**
 * The last frame of a stream the sidecar ends early (a budget used up, an
 * event over the cap), in the shape each API's own clients already parse as
 * an error rather than a truncated success (protocols.md §12):
 * - Chat Completions and Completions: a `data:` chunk carrying an `error`
 *   object, as OpenAI itself ends a failing stream (the openai SDK throws an
 *   APIError on it);
 * - the Responses API: its `error` event (`event: error`, `type: "error"`
 *   with `code`, `message`, `param` and the next `sequence_number`, as its
 *   reference documents it), with the same fields nested under `error` too,
 *   as OpenAI sends them and the SDK reads them first;
 * - Anthropic: an `event: error` frame.
 * The error is the provider-shaped one the sidecar answers refusals with
 * (forwarder/respond.ts), code included.
 */
import type { SvidecarError } from '../../../errors/index.ts'
import { errorBody } from '../../../forwarder/respond.ts'
import type { LlmApi } from '../call.ts'

/** `sequence` is the number a Responses API event added now takes (UsageMeter.nextSequence). */
export function terminalFrame(api: LlmApi, err: SvidecarError, sequence = 0): Buffer {
  if (api.startsWith('anthropic.'))
    return Buffer.from(`event: error\ndata: ${errorBody(err, 'anthropic').body}\n\n`)
  const body = errorBody(err, 'openai').body
  if (api !== 'openai.responses') return Buffer.from(`data: ${body}\n\n`)
  const { error } = JSON.parse(body) as { error: { message: string; param: null; code: string } }
  const event = {
    type: 'error',
    code: error.code,
    message: error.message,
    param: error.param,
    sequence_number: sequence,
    error,
  }
  return Buffer.from(`event: error\ndata: ${JSON.stringify(event)}\n\n`)
}
