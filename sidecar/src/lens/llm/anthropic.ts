/**
 * Anthropic-style endpoints: which API a path is, the token limit field,
 * and the model list shape (`{ data: [{ type: "model", id, ... }],
 * has_more, first_id, last_id }`), whose paging fields must describe the
 * filtered page, not the one the provider sent.
 */
import type { LlmApi } from './call.ts'

export const ANTHROPIC_ENDPOINTS: ReadonlyMap<string, LlmApi> = new Map<string, LlmApi>([
  ['POST /v1/messages', 'anthropic.messages'],
  ['POST /v1/messages/count_tokens', 'anthropic.count_tokens'],
  ['GET /v1/models', 'anthropic.models'],
])

export const ANTHROPIC_LIMIT_FIELDS: Readonly<Partial<Record<LlmApi, readonly string[]>>> = {
  'anthropic.messages': ['max_tokens'],
}

export const ANTHROPIC_NEVER_STREAMS: ReadonlySet<LlmApi> = new Set<LlmApi>(['anthropic.count_tokens'])

/** The header Anthropic's SDKs always send and OpenAI's never do: it tells the two `GET /v1/models` apart. */
export const ANTHROPIC_VERSION_HEADER = 'anthropic-version'

/**
 * The list with only the models `allowed` keeps; `first_id`/`last_id` name the first and last model kept
 * (null when none is), so no id of a denied model leaks. `has_more` stays the provider's: a page the filter
 * emptied is not the end of the list, and saying so would hide the allowed models of later pages from a client
 * that pages by hand (the SDKs stop at an empty page either way). Returns undefined when the document is not
 * the Anthropic list shape.
 */
export function filterAnthropicModels(
  doc: Record<string, unknown>,
  allowed: (id: string) => boolean,
): Record<string, unknown> | undefined {
  const data = doc.data
  if (!Array.isArray(data)) return undefined
  const kept: { id: string }[] = []
  for (const item of data) {
    const id = (item as { id?: unknown } | null)?.id
    if (typeof id === 'string' && allowed(id)) kept.push(item as { id: string })
  }
  const first = kept[0]?.id ?? null
  const last = kept.at(-1)?.id ?? null
  return {
    ...doc,
    data: kept,
    first_id: first,
    last_id: last,
  }
}
