/**
 * Anthropic-style endpoints: which API a path is, the token limit field,
 * and the model list shape (`{ data: [{ type: "model", id, ... }],
 * has_more, first_id, last_id }`), whose paging fields must describe the
 * filtered page, not the one the provider sent.
 */
import type { LlmApi, ModelPage } from './call.ts'

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

/** Anthropic's largest `limit` for `GET /v1/models`, and its default. */
const MAX_LIMIT = 1000
const DEFAULT_LIMIT = 20

/**
 * The request target with `limit` raised to the provider's largest page, and the page the client asked for.
 * A filtered page is cut from the larger one, so a subject allowed a few models among many still finds them
 * on its first page instead of behind pages the filter emptied (the SDKs stop paging at an empty page).
 * Undefined when the client's `limit` is not one the provider takes: the provider answers that as it would.
 */
export function widenModelPage(url: string): { url: string; page: ModelPage } | undefined {
  const q = url.indexOf('?')
  const params = new URLSearchParams(q === -1 ? '' : url.slice(q + 1))
  const raw = params.get('limit')
  const limit = raw === null ? DEFAULT_LIMIT : /^[0-9]{1,4}$/.test(raw) ? Number(raw) : Number.NaN
  if (!(limit >= 1 && limit <= MAX_LIMIT) || params.getAll('limit').length > 1) return undefined
  params.set('limit', String(MAX_LIMIT))
  return {
    url: `${q === -1 ? url : url.slice(0, q)}?${params.toString()}`,
    page: { limit, backward: params.has('before_id') },
  }
}

/**
 * The list with only the models `allowed` keeps; `first_id`/`last_id` name the first and last model kept
 * (null when none is), so no id of a denied model leaks. With `page`, the answer is the client's page cut from
 * the larger one the sidecar asked for, and `has_more` also says whether kept models were left out of it.
 * Otherwise `has_more` stays the provider's: a page the filter emptied is not the end of the list. Returns
 * undefined when the document is not the Anthropic list shape.
 */
export function filterAnthropicModels(
  doc: Record<string, unknown>,
  allowed: (id: string) => boolean,
  page?: ModelPage,
): Record<string, unknown> | undefined {
  const data = doc.data
  if (!Array.isArray(data)) return undefined
  let kept: { id: string }[] = []
  for (const item of data) {
    const id = (item as { id?: unknown } | null)?.id
    if (typeof id === 'string' && allowed(id)) kept.push(item as { id: string })
  }
  let more = doc.has_more
  if (page !== undefined && kept.length > page.limit) {
    kept = page.backward ? kept.slice(kept.length - page.limit) : kept.slice(0, page.limit)
    more = true
  }
  const first = kept[0]?.id ?? null
  const last = kept.at(-1)?.id ?? null
  return {
    ...doc,
    data: kept,
    ...(page === undefined ? {} : { has_more: more === true }),
    first_id: first,
    last_id: last,
  }
}
