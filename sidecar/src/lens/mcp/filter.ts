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

/** Whether an item (named as `resource`) stays in the list; a decision service answers with a promise. */
export type KeepItem = (
  resource: PolicyResource,
  item: Readonly<Record<string, unknown>>,
) => boolean | Promise<boolean>

const ITEMS: Readonly<
  Record<ListMethod, { key: string; resource: (item: Record<string, unknown>) => PolicyResource | undefined }>
> = {
  'tools/list': {
    key: 'tools',
    resource: (i) => (typeof i.name === 'string' ? { kind: 'mcp.tool', name: i.name } : undefined),
  },
  'prompts/list': {
    key: 'prompts',
    resource: (i) => (typeof i.name === 'string' ? { kind: 'mcp.prompt', name: i.name } : undefined),
  },
  'resources/list': {
    key: 'resources',
    resource: (i) => (typeof i.uri === 'string' ? { kind: 'mcp.resource', uri: i.uri } : undefined),
  },
  // A template is decided on its URI template as written: `file:///{path}` against `file:///**`.
  'resources/templates/list': {
    key: 'resourceTemplates',
    resource: (i) =>
      typeof i.uriTemplate === 'string' ? { kind: 'mcp.resource', uri: i.uriTemplate } : undefined,
  },
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

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
  const spec = ITEMS[method]
  const items = result[spec.key]
  if (!Array.isArray(items)) return undefined
  const answers: Array<boolean | Promise<boolean>> = new Array(items.length)
  let waiting = false
  for (let i = 0; i < items.length; i++) {
    const item: unknown = items[i]
    const resource = isObject(item) ? spec.resource(item) : undefined
    const a = resource === undefined ? false : keep(resource, item as Record<string, unknown>)
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
