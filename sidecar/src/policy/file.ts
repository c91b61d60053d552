/**
 * Loads a policy file (YAML, or JSON, which is YAML) into the built-in
 * engine. Every problem is reported at once with file:line:col and the
 * field path: YAML syntax, unknown or missing fields, bad SPIFFE IDs and
 * patterns, route and URI patterns, CEL that does not compile or names an
 * unknown variable, duplicate rule ids, and a file over the size cap.
 */
import { type Document, isMap, isScalar, type LineCounter, type Node } from 'yaml'
import { formatPath, type Path } from '../config/schema.ts'
import { parseYaml } from '../config/yaml.ts'
import { SvidecarError } from '../errors/index.ts'
import { BuiltinEngine } from './builtin/engine.ts'
import { compileRules } from './builtin/rules.ts'
import { POLICY_FILE, type PolicyDocument } from './definitions.ts'
import { readPolicyText } from './read-capped.ts'
import { type Issue, validate } from './validate.ts'

/** Far above 10,000 rules (about 2 MB); far below what would stall the process on a reload. */
export const DEFAULT_MAX_POLICY_BYTES = 8 * 1024 * 1024

export interface PolicyIssue {
  /** The field path, e.g. `rules[3].subjects[0].pattern`, or `(yaml)` for syntax errors. */
  readonly path: string
  readonly line?: number
  readonly column?: number
  readonly message: string
}

export class PolicyError extends SvidecarError {
  readonly issues: readonly PolicyIssue[]
  constructor(source: string, issues: PolicyIssue[]) {
    const lines = issues.map((i) => `${formatIssue(source, i)}`)
    super(
      'SVD_POLICY_INVALID',
      `${issues.length} problem${issues.length === 1 ? '' : 's'} in ${source}:\n  ${lines.join('\n  ')}`,
      { where: source },
    )
    this.issues = issues
  }
}

/** `file:line:col: field: message`, the form editors and CI logs link to. */
export function formatIssue(source: string, i: PolicyIssue): string {
  const at = i.line === undefined ? source : `${source}:${i.line}:${i.column ?? 1}`
  return `${at}: ${i.path}: ${i.message}`
}

export interface LoadedPolicy {
  readonly source: string
  readonly engine: BuiltinEngine
  readonly document: PolicyDocument
}

export interface LoadOptions {
  maxBytes?: number
}

/** Reads and compiles a policy file; throws PolicyError (invalid) or SvidecarError SVD_POLICY_UNREADABLE. */
export function loadPolicyFile(path: string, options: LoadOptions = {}): LoadedPolicy {
  const max = options.maxBytes ?? DEFAULT_MAX_POLICY_BYTES
  const text = readPolicyText(path, max)
  return parsePolicy(text, path)
}

/** Validates and compiles policy text; `source` names it in errors. */
export function parsePolicy(text: string, source: string): LoadedPolicy {
  const { doc, lineCounter, syntaxIssues } = parseYaml(text)
  if (syntaxIssues.length > 0) throw new PolicyError(source, syntaxIssues)
  let raw: unknown
  try {
    raw = doc.toJS({ maxAliasCount: 20 })
  } catch (err) {
    throw new PolicyError(source, [{ path: '(yaml)', message: (err as Error).message }])
  }
  const locate = (issue: Issue): PolicyIssue => {
    const pos = position(doc, text, lineCounter, issue.path, issue.column)
    return { path: formatPath(issue.path), ...pos, message: issue.message }
  }
  const issues: Issue[] = []
  const valid = validate(POLICY_FILE, raw ?? null, [], issues)
  const rawRules = (raw as { rules?: unknown } | null)?.rules
  const document = raw as PolicyDocument
  const mode = valid ? (document.mode ?? 'enforce') : 'enforce'
  const rules = compileRules(Array.isArray(rawRules) ? rawRules : [], mode, issues)
  if (!valid || rules === undefined) throw new PolicyError(source, sortIssues(issues.map(locate)))
  return { source, engine: new BuiltinEngine(rules, mode, valid ? document.denyStyle : undefined), document }
}

/** File order, so the list reads top to bottom. */
function sortIssues(issues: PolicyIssue[]): PolicyIssue[] {
  return issues
    .map((issue, n) => ({ issue, n }))
    .sort(
      (a, b) =>
        (a.issue.line ?? 0) - (b.issue.line ?? 0) ||
        (a.issue.column ?? 0) - (b.issue.column ?? 0) ||
        a.n - b.n,
    )
    .map((x) => x.issue)
}

type Ranged = Node & { range?: [number, number, number] }

/** Where a field is: its key for a mapping entry, else its value; the deepest existing ancestor otherwise. */
function position(
  doc: Document,
  text: string,
  lc: LineCounter,
  path: Path,
  column: number | undefined,
): { line?: number; column?: number } {
  for (let n = path.length; n >= 0; n--) {
    const sub = path.slice(0, n)
    const node = doc.getIn(sub, true) as Ranged | undefined
    // A CEL position lands inside the expression when it is written on one line as a plain or quoted scalar.
    if (n === path.length && column !== undefined && isScalar(node) && node.range) {
      const inline = node.type === 'PLAIN' || node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE'
      if (inline && !text.slice(node.range[0], node.range[1]).includes('\n')) {
        const pos = lc.linePos(node.range[0] + (node.type === 'PLAIN' ? 0 : 1) + column - 1)
        return { line: pos.line, column: pos.col }
      }
    }
    const key = n > 0 ? keyNode(doc, sub) : undefined
    const range = key?.range ?? node?.range
    if (range) {
      const pos = lc.linePos(range[0])
      return { line: pos.line, column: pos.col }
    }
  }
  return {}
}

function keyNode(doc: Document, path: Path): Ranged | undefined {
  const parent = doc.getIn(path.slice(0, -1), true)
  const last = path[path.length - 1]
  if (typeof last !== 'string' || !isMap(parent)) return undefined
  const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === last)
  return pair?.key as Ranged | undefined
}
