/**
 * Turns a validated policy document into compiled rules: SPIFFE subjects
 * parsed with the library's matchers, resource patterns parsed into segment
 * and name patterns, CEL conditions compiled. Every problem is reported
 * with the field path it belongs to; nothing is compiled per request later.
 */
import {
  type IdMatcher,
  matchId,
  matchMemberOf,
  matchPattern,
  SpiffeId,
  TrustDomain,
} from 'workload-api-client'
import type { Path } from '../../config/schema.ts'
import { RESOURCE, type ResourceDoc, RULE, type RuleDoc, SUBJECT, type SubjectDoc } from '../definitions.ts'
import type { DecisionMode, DenyStyle, ResourceKind } from '../engine.ts'
import { type Issue, validate } from '../validate.ts'
import { type CompiledCondition, ConditionCompileError, compileCondition } from './condition.ts'
import { type NameGlob, nameGlob } from './names.ts'
import { pathPattern, uriPattern } from './paths.ts'
import type { SegmentPattern } from './segment-trie.ts'

export interface CompiledSubject {
  /** As written in the file. */
  readonly source: string
  readonly matcher: IdMatcher
  readonly trustDomain: string
  /** The path part as segment patterns; a trust domain is `[**]`. */
  readonly segments: readonly SegmentPattern[]
  /** Identifies equal subjects, so rules that share one share an index bucket. */
  readonly key: string
  /** Set when the subject is one exact ID (no wildcard): the index files it in a map, not the trie. */
  readonly exact: string | undefined
}

export type CompiledResource =
  | {
      readonly kind: 'http.route'
      readonly source: string
      readonly methods: readonly string[] | undefined
      readonly path: readonly SegmentPattern[]
    }
  | {
      readonly kind: 'llm.model' | 'mcp.tool' | 'mcp.prompt' | 'mcp.client'
      readonly source: string
      readonly glob: NameGlob
    }
  | { readonly kind: 'mcp.resource'; readonly source: string; readonly uri: readonly SegmentPattern[] }

export interface CompiledRule {
  /** Position in the file; the earlier rule wins a tie. */
  readonly index: number
  readonly id: string
  readonly description: string | undefined
  readonly effect: 'allow' | 'deny'
  /** The rule's own mode, or the policy's. */
  readonly mode: DecisionMode
  readonly subjects: readonly CompiledSubject[]
  readonly resources: readonly CompiledResource[]
  readonly kinds: ReadonlySet<ResourceKind>
  readonly condition: CompiledCondition | undefined
  /** How an MCP lens answers this deny rule's denials, when the rule says. */
  readonly denyStyle: DenyStyle | undefined
}

const STANDARD_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
])

function subjectFromPattern(source: string, pattern: string): CompiledSubject {
  const matcher = matchPattern(pattern)
  const rest = pattern.slice('spiffe://'.length)
  const slash = rest.indexOf('/')
  const td = slash === -1 ? rest : rest.slice(0, slash)
  const segs: SegmentPattern[] =
    slash === -1
      ? []
      : rest
          .slice(slash + 1)
          .split('/')
          .map((s) =>
            s === '*' ? { kind: 'one' } : s === '**' ? { kind: 'any' } : { kind: 'literal', value: s },
          )
  // A pattern without wildcards is an exact ID.
  const exact = segs.every((x) => x.kind === 'literal') ? matcher.description.replace(/^id /, '') : undefined
  return { source, matcher, trustDomain: td, segments: segs, key: `p ${pattern}`, exact }
}

export function compileSubject(doc: SubjectDoc): CompiledSubject {
  if (typeof doc === 'string') {
    return doc.includes('*') ? subjectFromPattern(doc, doc) : compileSubject({ id: doc })
  }
  if ('id' in doc) {
    const id = SpiffeId.parse(doc.id)
    return {
      source: doc.id,
      matcher: matchId(id),
      trustDomain: id.trustDomain.name,
      segments: id.segments.map((value) => ({ kind: 'literal', value })),
      key: `p ${id.toString()}`,
      exact: id.toString(),
    }
  }
  if ('pattern' in doc) return subjectFromPattern(doc.pattern, doc.pattern)
  const td = TrustDomain.parse(doc.trustDomain)
  return {
    source: `trustDomain ${td.name}`,
    matcher: matchMemberOf(td),
    trustDomain: td.name,
    segments: [{ kind: 'any' }],
    key: `td ${td.name}`,
    exact: undefined,
  }
}

function subjectPath(doc: SubjectDoc): string | undefined {
  if (typeof doc === 'string') return undefined
  return Object.keys(doc)[0]
}

function compileResource(doc: ResourceDoc, path: Path, issues: Issue[]): CompiledResource | undefined {
  try {
    switch (doc.kind) {
      case 'http.route': {
        const methods =
          doc.methods === undefined || doc.methods.includes('*') ? undefined : [...new Set(doc.methods)]
        // Methods are case-sensitive (RFC 9110 §9.1): "get" would never match a GET, so it is a mistake.
        const lower = doc.methods?.findIndex(
          (m) => m !== m.toUpperCase() && STANDARD_METHODS.has(m.toUpperCase()),
        )
        if (lower !== undefined && lower !== -1) {
          const m = doc.methods?.[lower] as string
          issues.push({
            path: [...path, 'methods', lower],
            message: `methods are case-sensitive: "${m}" never matches; write "${m.toUpperCase()}"`,
          })
          return undefined
        }
        let p: SegmentPattern[]
        try {
          p = pathPattern(doc.path)
        } catch (err) {
          issues.push({ path: [...path, 'path'], message: `"${doc.path}": ${(err as Error).message}` })
          return undefined
        }
        return { kind: 'http.route', source: doc.path, methods, path: p }
      }
      case 'mcp.resource': {
        try {
          return { kind: 'mcp.resource', source: doc.uri, uri: uriPattern(doc.uri) }
        } catch (err) {
          issues.push({ path: [...path, 'uri'], message: `"${doc.uri}": ${(err as Error).message}` })
          return undefined
        }
      }
      default:
        return { kind: doc.kind, source: doc.name, glob: nameGlob(doc.name) }
    }
  } catch (err) {
    issues.push({ path, message: (err as Error).message })
    return undefined
  }
}

const isMapping = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * Compiles the rules of a policy document; returns undefined when any
 * problem was reported. `rules` are the raw entries: each part (id,
 * subject, resource, condition) that passes the schema is checked for
 * meaning even when a sibling does not, so one run reports everything.
 * The schema's own complaints are not repeated here.
 */
export function compileRules(
  rules: readonly unknown[],
  policyMode: DecisionMode,
  issues: Issue[],
): CompiledRule[] | undefined {
  const before = issues.length
  const seen = new Map<string, number>()
  const out: CompiledRule[] = []
  rules.forEach((raw, i) => {
    if (!isMapping(raw)) return
    const path: Path = ['rules', i]
    const wholeRuleValid = validate(RULE, raw, path, [])
    if (typeof raw.id === 'string') {
      const first = seen.get(raw.id)
      if (first !== undefined) {
        issues.push({
          path: [...path, 'id'],
          message: `duplicate rule id "${raw.id}" (first used by rules[${first}])`,
        })
      } else seen.set(raw.id, i)
    }
    const subjects: CompiledSubject[] = []
    if (Array.isArray(raw.subjects)) {
      raw.subjects.forEach((s: unknown, j) => {
        if (!validate(SUBJECT, s, [], [])) return
        const doc = s as SubjectDoc
        const key = subjectPath(doc)
        const p: Path = key === undefined ? [...path, 'subjects', j] : [...path, 'subjects', j, key]
        try {
          subjects.push(compileSubject(doc))
        } catch (err) {
          issues.push({ path: p, message: (err as Error).message })
        }
      })
    }
    const resources: CompiledResource[] = []
    if (Array.isArray(raw.resources)) {
      raw.resources.forEach((r: unknown, j) => {
        if (!validate(RESOURCE, r, [], [])) return
        const c = compileResource(r as ResourceDoc, [...path, 'resources', j], issues)
        if (c !== undefined) resources.push(c)
      })
    }
    let condition: CompiledCondition | undefined
    if (typeof raw.when === 'string' && raw.when !== '') {
      try {
        condition = compileCondition(raw.when)
      } catch (err) {
        if (!(err instanceof ConditionCompileError)) throw err
        issues.push({
          path: [...path, 'when'],
          message: err.message,
          ...(err.column === undefined ? {} : { column: err.column }),
        })
      }
    }
    if (!wholeRuleValid) return
    const rule = raw as unknown as RuleDoc
    out.push({
      index: i,
      id: rule.id,
      description: rule.description,
      effect: rule.effect,
      mode: rule.mode ?? policyMode,
      subjects,
      resources,
      kinds: new Set(resources.map((r) => r.kind)),
      condition,
      denyStyle: rule.denyStyle,
    })
  })
  return issues.length > before ? undefined : out
}
