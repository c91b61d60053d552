/**
 * OpenAI-style endpoints: which API a path is, which fields of its body
 * carry the token limit, and the model list shape
 * (`{ object: "list", data: [{ id, object: "model", ... }] }`, no paging).
 */
import type { LlmApi } from './call.ts'

export const OPENAI_ENDPOINTS: ReadonlyMap<string, LlmApi> = new Map<string, LlmApi>([
  ['POST /v1/chat/completions', 'openai.chat'],
  ['POST /v1/completions', 'openai.completions'],
  ['POST /v1/responses', 'openai.responses'],
  ['POST /v1/embeddings', 'openai.embeddings'],
  ['GET /v1/models', 'openai.models'],
])

/** The fields that cap the output of each API (chat accepts the older and the newer name). */
export const OPENAI_LIMIT_FIELDS: Readonly<Partial<Record<LlmApi, readonly string[]>>> = {
  'openai.chat': ['max_tokens', 'max_completion_tokens'],
  'openai.completions': ['max_tokens'],
  'openai.responses': ['max_output_tokens'],
}

/** APIs that cannot stream: a `stream` field there is left to the provider to refuse. */
export const OPENAI_NEVER_STREAMS: ReadonlySet<LlmApi> = new Set<LlmApi>(['openai.embeddings'])

/**
 * The list with only the models `allowed` keeps. Returns undefined when the document is not the OpenAI list
 * shape (the caller then fails closed).
 */
export function filterOpenAiModels(
  doc: Record<string, unknown>,
  allowed: (id: string) => boolean,
): Record<string, unknown> | undefined {
  const data = doc.data
  if (!Array.isArray(data)) return undefined
  const kept: unknown[] = []
  for (const item of data) {
    const id = (item as { id?: unknown } | null)?.id
    if (typeof id === 'string' && allowed(id)) kept.push(item)
  }
  return { ...doc, data: kept }
}
