/**
 * Translates a built-in policy document into an equivalent Cedar policy
 * set, for moving to the Cedar engine and for running the scenario suite on
 * both. Each rule becomes one policy, in file order, annotated
 * `@id("<rule id>")` and, when the rule sets one, `@mode(...)`; the
 * policy's own mode is returned for the engine's `mode` option.
 *
 * Semantics are kept exactly or the rule is refused
 * (SVD_POLICY_INVALID, reason NOT_EXPRESSIBLE_IN_CEDAR): a CEL condition is
 * not translated (write its Cedar `when` by hand), nor a pattern with two
 * `**` segments (Cedar has no loops to try their split points). A pattern
 * with at most one `**` is exact: the segments before it are compared by
 * position from the start (`segments["0"]`, ...), those after it from the
 * end (`segmentsFromEnd["0"]` is the last), and `depth` bounds the count;
 * each segment is compared alone, so a `like` wildcard (which would cross
 * `/` in a whole path) never sees more than one segment.
 */
import { SvidecarError } from '../../errors/index.ts'
import { pathPattern, uriPattern } from '../builtin/paths.ts'
import { compileSubject } from '../builtin/rules.ts'
import type { SegmentPattern } from '../builtin/segment-trie.ts'
import type { PolicyDocument, ResourceDoc, RuleDoc, SubjectDoc } from '../definitions.ts'
import type { DecisionMode } from '../engine.ts'
import { ACTION_TYPE, RESOURCE_TYPES, WORKLOAD_TYPE } from './entities.ts'

export interface TranslatedPolicy {
  /** The Cedar policy set. */
  readonly text: string
  /** The built-in policy's mode: give it to the Cedar engine as its `mode`. */
  readonly mode: DecisionMode
}

/** A Cedar string literal. */
function cedarString(s: string): string {
  let out = '"'
  for (const ch of s) {
    const c = ch.codePointAt(0) as number
    if (ch === '"' || ch === '\\') out += `\\${ch}`
    else if (c < 0x20 || c === 0x7f) out += `\\u{${c.toString(16)}}`
    else out += ch
  }
  return `${out}"`
}

/** A Cedar `like` pattern from a glob whose every `*` is a wildcard. */
function likePattern(glob: string): string {
  return cedarString(glob)
}

class Untranslatable extends Error {}

function segmentTest(value: string, seg: SegmentPattern): string | undefined {
  switch (seg.kind) {
    case 'literal':
      return `${value} == ${cedarString(seg.value)}`
    case 'one':
      return `${value} != ""`
    case 'glob':
      return `${value} like ${likePattern(seg.source)}`
    case 'any':
      return undefined
  }
}

/** A Cedar condition that holds exactly when `on`'s segments match the pattern. */
function segmentsMatch(on: string, pattern: readonly SegmentPattern[], what: string): string {
  const anyAt = pattern.findIndex((s) => s.kind === 'any')
  if (pattern.filter((s) => s.kind === 'any').length > 1) {
    throw new Untranslatable(`${what}: a pattern with more than one "**" has no exact Cedar form`)
  }
  const parts: string[] = []
  if (anyAt === -1) {
    parts.push(`${on}.depth == ${pattern.length}`)
    pattern.forEach((seg, i) => {
      const t = segmentTest(`${on}.segments[${cedarString(String(i))}]`, seg)
      if (t !== undefined) parts.push(t)
    })
  } else {
    const before = pattern.slice(0, anyAt)
    const after = pattern.slice(anyAt + 1)
    if (before.length + after.length > 0) parts.push(`${on}.depth >= ${before.length + after.length}`)
    before.forEach((seg, i) => {
      const t = segmentTest(`${on}.segments[${cedarString(String(i))}]`, seg)
      if (t !== undefined) parts.push(t)
    })
    after.forEach((seg, i) => {
      const t = segmentTest(`${on}.segmentsFromEnd[${cedarString(String(after.length - 1 - i))}]`, seg)
      if (t !== undefined) parts.push(t)
    })
  }
  return parts.length === 0 ? 'true' : parts.join(' && ')
}

function subjectCondition(doc: SubjectDoc): string {
  const s = compileSubject(doc)
  if (s.exact !== undefined) return `principal == ${WORKLOAD_TYPE}::${cedarString(s.exact)}`
  const td = `principal.trustDomain == ${cedarString(s.trustDomain)}`
  const rest = segmentsMatch('principal', s.segments, `subject ${s.source}`)
  return rest === 'true' ? td : `${td} && ${rest}`
}

function nameCondition(name: string): string {
  return name.includes('*')
    ? `resource.name like ${likePattern(name)}`
    : `resource.name == ${cedarString(name)}`
}

/** What a resource entry requires; `head` (action and type) is left out when the policy's scope says it. */
function resourceCondition(doc: ResourceDoc, head: boolean): string {
  const parts: string[] = []
  if (head)
    parts.push(
      `action == ${ACTION_TYPE}::${cedarString(doc.kind)} && resource is ${RESOURCE_TYPES[doc.kind]}`,
    )
  switch (doc.kind) {
    case 'http.route': {
      if (doc.methods !== undefined && !doc.methods.includes('*')) {
        const methods = [...new Set(doc.methods)]
        parts.push(
          methods.length === 1
            ? `resource.method == ${cedarString(methods[0] as string)}`
            : `[${methods.map(cedarString).join(', ')}].contains(resource.method)`,
        )
      }
      const m = segmentsMatch('resource', pathPattern(doc.path), `path ${doc.path}`)
      if (m !== 'true') parts.push(m)
      break
    }
    case 'mcp.resource': {
      const m = segmentsMatch('resource', uriPattern(doc.uri), `uri ${doc.uri}`)
      if (m !== 'true') parts.push(m)
      break
    }
    default:
      parts.push(nameCondition(doc.name))
  }
  return parts.length === 0 ? 'true' : parts.join(' && ')
}

function anyOf(conditions: readonly string[]): string {
  return conditions.length === 1 ? (conditions[0] as string) : conditions.map((c) => `(${c})`).join(' || ')
}

function translateRule(rule: RuleDoc): string {
  if (rule.when !== undefined && rule.when !== '') {
    throw new Untranslatable('a CEL condition has no automatic Cedar form; write its `when` clause by hand')
  }
  const lines: string[] = []
  if (rule.description !== undefined) {
    for (const l of rule.description.split(/\r?\n/)) lines.push(`// ${l}`)
  }
  lines.push(`@id(${cedarString(rule.id)})`)
  if (rule.mode !== undefined) lines.push(`@mode(${cedarString(rule.mode)})`)
  // One exact subject and one kind go in the policy's scope, where the engine slices policies by them.
  const only = rule.subjects.length === 1 ? compileSubject(rule.subjects[0] as SubjectDoc).exact : undefined
  const kinds = new Set(rule.resources.map((r) => r.kind))
  const kind = kinds.size === 1 ? rule.resources[0]?.kind : undefined
  const principal = only === undefined ? 'principal' : `principal == ${WORKLOAD_TYPE}::${cedarString(only)}`
  const scope =
    kind === undefined
      ? 'action, resource'
      : `action == ${ACTION_TYPE}::${cedarString(kind)}, resource is ${RESOURCE_TYPES[kind]}`
  const conditions: string[] = []
  if (only === undefined) conditions.push(anyOf(rule.subjects.map(subjectCondition)))
  const resources = anyOf(rule.resources.map((r) => resourceCondition(r, kind === undefined)))
  if (resources !== 'true') conditions.push(resources)
  lines.push(`${rule.effect === 'allow' ? 'permit' : 'forbid'} (${principal}, ${scope})`)
  if (conditions.length > 0) lines.push(`when { ${conditions.map((c) => `(${c})`).join(' && ')} }`)
  lines[lines.length - 1] += ';'
  return lines.join('\n')
}

/** The Cedar form of a validated built-in policy document; throws SVD_POLICY_INVALID for what Cedar cannot say exactly. */
export function translateToCedar(doc: PolicyDocument): TranslatedPolicy {
  const out: string[] = []
  doc.rules.forEach((rule, i) => {
    try {
      out.push(translateRule(rule))
    } catch (err) {
      if (!(err instanceof Untranslatable)) throw err
      throw new SvidecarError('SVD_POLICY_INVALID', `rules[${i}] (${rule.id}): ${err.message}`, {
        where: `rules[${i}]`,
        reason: 'NOT_EXPRESSIBLE_IN_CEDAR',
      })
    }
  })
  return { text: out.length === 0 ? '' : `${out.join('\n\n')}\n`, mode: doc.mode ?? 'enforce' }
}
