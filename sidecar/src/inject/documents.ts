/**
 * Offline injection of YAML files (what `svidecar inject -f` does, like
 * `istioctl kube-inject`): every document of a multi-document file, and every
 * item of a `kind: List`, goes through the same pure injector as the webhook.
 * The patch is applied to the parsed YAML document rather than to a plain
 * copy, so comments and most of the layout of what it did not touch stay;
 * documents it does not inject into are written back byte for byte.
 */
import { CST, Document, isMap, isSeq, Parser, parseAllDocuments, visit } from 'yaml'
import { SvidecarError } from '../errors/index.ts'
import { type InjectContext, inject } from './inject.ts'
import type { AddOperation, JsonValue } from './json-patch.ts'
import type { InjectorOptions } from './options.ts'

export interface DocumentReport {
  /** 1-based position of the document in the file, and of the item in a List. */
  index: number
  item?: number
  kind: string
  name: string
  injected: boolean
  reason: string
  warnings: string[]
}

export interface InjectedFile {
  text: string
  reports: DocumentReport[]
}

function unescapeToken(token: string): string {
  return token.replaceAll('~1', '/').replaceAll('~0', '~')
}

/** Applies add operations to a YAML document in place. */
function applyToDocument(doc: Document, prefix: (string | number)[], ops: readonly AddOperation[]): void {
  for (const op of ops) {
    const segments = op.path
      .split('/')
      .slice(1)
      .map(unescapeToken)
      .map((s) => (/^\d+$/.test(s) ? Number(s) : s))
    const last = segments.pop() as string | number
    const parentPath = [...prefix, ...segments]
    const parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true)
    if (isSeq(parent)) {
      const node = doc.createNode(op.value)
      if (last === '-') parent.items.push(node)
      else parent.items.splice(Number(last), 0, node)
    } else if (isMap(parent)) {
      parent.set(doc.createNode(String(last)), doc.createNode(op.value))
    } else {
      throw new SvidecarError(
        'SVD_INTERNAL',
        `cannot apply ${op.path}: its parent is not in the YAML document`,
      )
    }
  }
}

function label(object: Record<string, unknown>): { kind: string; name: string } {
  const meta = (object.metadata ?? {}) as Record<string, unknown>
  return { kind: String(object.kind ?? '?'), name: String(meta.name ?? meta.generateName ?? '') }
}

/** Injects every document of `text`; throws (naming the document) on a parse error or a refusal. */
export function injectYaml(text: string, options: InjectorOptions, source = '<input>'): InjectedFile {
  // Merge keys (`<<: *defaults`) resolved as kubectl's YAML reader resolves them: the injector must see the
  // object the API server will get.
  const docs = parseAllDocuments(text, { uniqueKeys: true, merge: true })
  if (!Array.isArray(docs)) return { text, reports: [] }
  const sources = documentSources(text)
  if (sources.length !== docs.length) {
    throw new SvidecarError(
      'SVD_INJECT_INVALID',
      `${source}: the YAML stream could not be split into documents`,
    )
  }
  const reports: DocumentReport[] = []
  const out: string[] = []
  docs.forEach((doc, i) => {
    const index = i + 1
    const error = doc.errors[0]
    if (error !== undefined) {
      throw new SvidecarError('SVD_INJECT_INVALID', `${source}: document ${index}: ${error.message}`)
    }
    // Through JSON, as kubectl sends it: an alias would otherwise be one shared object, patched twice.
    const js = JSON.parse(JSON.stringify(doc.toJS({ maxAliasCount: 100 }) ?? null)) as JsonValue
    if (js === null || js === undefined) {
      out.push(sources[i] as string)
      return
    }
    // An alias makes one node appear in several places, and a merge key makes fields appear where no node
    // holds them: a patch applied to such a document would land in the wrong place, or nowhere. Those
    // documents are written out resolved (their comments are lost); all others keep their layout.
    let aliased = false
    visit(doc, {
      Alias() {
        aliased = true
        return visit.BREAK
      },
    })
    const editable = aliased ? new Document(js, { aliasDuplicateObjects: false }) : doc
    const isList =
      typeof js === 'object' && !Array.isArray(js) && js.kind === 'List' && Array.isArray(js.items)
    const targets: { item?: number; value: unknown; prefix: (string | number)[] }[] = isList
      ? (js.items as JsonValue[]).map((value, n) => ({ item: n + 1, value, prefix: ['items', n] }))
      : [{ value: js, prefix: [] }]
    for (const target of targets) {
      const where = `${source}: document ${index}${target.item === undefined ? '' : `, item ${target.item}`}`
      const object = target.value as Record<string, unknown>
      const context: InjectContext = { namespaceOptedIn: true }
      let result: ReturnType<typeof inject>
      try {
        result = inject(object, options, context)
      } catch (err) {
        if (err instanceof SvidecarError) {
          throw new SvidecarError(err.code, `${where}: ${err.message}`, { cause: err })
        }
        throw err
      }
      const { kind, name } =
        typeof object === 'object' && object !== null ? label(object) : { kind: '?', name: '' }
      reports.push({
        index,
        ...(target.item === undefined ? {} : { item: target.item }),
        kind,
        name,
        injected: result.injected,
        reason: result.reason,
        warnings: result.warnings,
      })
      if (result.injected) applyToDocument(editable, target.prefix, result.patch)
    }
    if (!reports.some((r) => r.index === index && r.injected)) {
      out.push(sources[i] as string)
      return
    }
    if (editable.directives !== undefined) editable.directives.docStart = null
    // A document written as one JSON object (`kubectl get -o json`) is answered in JSON, for jq and friends.
    const json =
      isMap(doc.contents) && doc.contents.flow === true && (sources[i] ?? '').trimStart().startsWith('{')
    const rendered = json
      ? `${JSON.stringify(editable.toJS(), null, 2)}\n`
      : editable.toString({ lineWidth: 0 })
    out.push(i === 0 ? rendered : `---\n${rendered}`)
  })
  return { text: out.join(''), reports }
}

/**
 * The source text of each document: the comments and directives before it,
 * its `---`, its body, its `...` and, for the last, whatever trails it.
 * Concatenated they are the input again.
 */
function documentSources(text: string): string[] {
  const parts: string[] = []
  let pending = ''
  for (const token of new Parser().parse(text)) {
    const piece = CST.stringify(token)
    if (token.type === 'document') {
      parts.push(pending + piece)
      pending = ''
    } else if (token.type === 'doc-end' && parts.length > 0) {
      parts[parts.length - 1] += piece
    } else {
      pending += piece
    }
  }
  if (pending !== '') {
    if (parts.length > 0) parts[parts.length - 1] += pending
    else if (pending.trim() !== '') parts.push(pending)
  }
  return parts
}
