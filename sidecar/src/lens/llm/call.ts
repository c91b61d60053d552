/**
 * What the LLM lens learned about a request, for the stages after it
 * (policy reads the model as the `llm.model` resource; budgets reserve on
 * `maxTokens`; token accounting picks its stream parser by `api`). The
 * lens stores it under `exchange.attributes.llm`; nothing else writes there.
 */

/** The API a request speaks, named by provider style and endpoint. */
export type LlmApi =
  | 'openai.chat' // POST /v1/chat/completions
  | 'openai.completions' // POST /v1/completions
  | 'openai.responses' // POST /v1/responses
  | 'openai.embeddings' // POST /v1/embeddings
  | 'openai.models' // GET /v1/models
  | 'anthropic.messages' // POST /v1/messages
  | 'anthropic.count_tokens' // POST /v1/messages/count_tokens
  | 'anthropic.models' // GET /v1/models with Anthropic's list shape

export interface LlmCall {
  readonly api: LlmApi
  /** The `model` field of the body; absent only for model lists. */
  readonly model?: string
  /** The request asked for a streamed (SSE) response. */
  readonly stream: boolean
  /** `max_tokens`, `max_completion_tokens` or `max_output_tokens` as the client sent it. */
  readonly maxTokens?: number
  /** The configured provider the call goes to (its name in the config). */
  readonly provider?: string
  /** An Anthropic model list fetched as a larger page: the page the client asked for. */
  readonly page?: ModelPage
}

/** The page the client asked for when the sidecar fetched a larger one (anthropic.ts `widenModelPage`). */
export interface ModelPage {
  readonly limit: number
  /** `before_id` paging: the page ends where the client asked, so the last models are the ones it gets. */
  readonly backward: boolean
}

export const LLM_ATTRIBUTE = 'llm'

export function llmCallOf(attributes: Readonly<Record<string, unknown>>): LlmCall | undefined {
  return attributes[LLM_ATTRIBUTE] as LlmCall | undefined
}
