/**
 * List filtering: a `tools/list`, `resources/list`,
 * `resources/templates/list` or `prompts/list` result keeps only the items
 * the subject may know about. Each page is filtered as it comes;
 * `nextCursor` passes through (a page may become empty, which is valid).
 * An item without the field it is decided on is dropped: what cannot be
 * decided is not shown.
 */
import type { PolicyResource } from '../../policy/engine.ts'
import type { ListMethod } from './targets.ts'

/** A list item as the decision may need it: most decisions read only its name, so it is parsed on demand. */
export interface ListedItem {
  /** The item as the client will read it. */
  value(): Readonly<Record<string, unknown>>
  /** False only when the item's text certainly holds no member named `key` (written without escapes). */
  mayHold(key: string): boolean
  /** The item's own text, when the answer was read as text (filter-text.ts). */
  text(): Buffer | undefined
  /** Whether the item's own text is `text`, byte for byte (false when it has none). */
  sameText(text: Buffer): boolean
}

/** Whether an item (named as `resource`) stays in the list; a decision service answers with a promise. */
export type KeepItem = (resource: PolicyResource, item: ListedItem) => boolean | Promise<boolean>

/** For each list method: the result's array, the member each item is decided on, and the resource it names. */
export const LIST_ITEMS: Readonly<
  Record<ListMethod, { readonly key: string; readonly field: string; resource(v: string): PolicyResource }>
> = {
  'tools/list': { key: 'tools', field: 'name', resource: (name) => ({ kind: 'mcp.tool', name }) },
  'prompts/list': { key: 'prompts', field: 'name', resource: (name) => ({ kind: 'mcp.prompt', name }) },
  'resources/list': { key: 'resources', field: 'uri', resource: (uri) => ({ kind: 'mcp.resource', uri }) },
  // A template is decided on its URI template as written: `file:///{path}` against `file:///**`.
  'resources/templates/list': {
    key: 'resourceTemplates',
    field: 'uriTemplate',
    resource: (uri) => ({ kind: 'mcp.resource', uri }),
  },
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/** An item of a parsed answer: its value is at hand; it has no text of its own. */
const parsed = (item: Readonly<Record<string, unknown>>): ListedItem => ({
  value: () => item,
  mayHold: () => true,
  text: () => undefined,
  sameText: () => false,
})

/**
 * The result with only the items `keep` allows, marked private to caches (modern `cacheScope`); undefined when
 * it stays as it is (every item kept and no cache scope, or no list array: the client will reject that itself).
 */
export function filterList(
  method: ListMethod,
  result: unknown,
  keep: KeepItem,
): Record<string, unknown> | undefined | Promise<Record<string, unknown> | undefined> {
  if (!isObject(result)) return undefined
  const spec = LIST_ITEMS[method]
  const items = result[spec.key]
  if (!Array.isArray(items)) return undefined
  const answers: Array<boolean | Promise<boolean>> = new Array(items.length)
  let waiting = false
  for (let i = 0; i < items.length; i++) {
    const item: unknown = items[i]
    const named = isObject(item) ? item[spec.field] : undefined
    const a =
      typeof named === 'string' ? keep(spec.resource(named), parsed(item as Record<string, unknown>)) : false
    if (a instanceof Promise) waiting = true
    answers[i] = a
  }
  const build = (kept: readonly boolean[]) => {
    const scoped = Object.hasOwn(result, 'cacheScope') || Object.hasOwn(result, 'ttlMs')
    // Nothing to take out and no cache scope to force: the answer goes as it came, without re-serializing it.
    if (!scoped && !kept.includes(false)) return undefined
    const out: Record<string, unknown> = { ...result, [spec.key]: items.filter((_, i) => kept[i] === true) }
    // A result filtered per identity must never be shared from a cache (SEP-2549).
    if (scoped) out.cacheScope = 'private'
    return out
  }
  if (waiting) return Promise.all(answers).then(build)
  return build(answers as boolean[])
}
