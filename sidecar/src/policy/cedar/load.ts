/**
 * Loads a Cedar policy set (and optionally a Cedar schema to validate it
 * against) once, for the Cedar engine. Every problem Cedar reports is a
 * PolicyError (SVD_POLICY_INVALID) with file:line:col where Cedar gives a
 * source location; svidecar's own rules on top of Cedar's are checked here
 * too: `@id` values are unique, `@mode` is `enforce` or `audit`, and there
 * are no templates (nothing would link them).
 */
import {
  type ActionConstraint,
  checkParsePolicySet,
  checkParseSchema,
  type DetailedError,
  type PrincipalConstraint,
  policySetTextToParts,
  policyToJson,
  type Schema,
  validate,
} from '@cedar-policy/cedar-wasm/nodejs'
import { DENY_STYLES, type DecisionMode, type DenyStyle } from '../engine.ts'
import { DEFAULT_MAX_POLICY_BYTES, PolicyError, type PolicyIssue } from '../file.ts'
import { readPolicyText } from '../read-capped.ts'
import { type PolicyHead, readPolicyHead } from './head.ts'
import { nestingProblem } from './nesting.ts'

export interface CedarPolicyEntry {
  /** The `@id` annotation, or Cedar's own name for the policy (`policy0`, `policy1`, ... in file order). */
  readonly id: string
  readonly effect: 'permit' | 'forbid'
  /** The `@mode` annotation; the engine's mode when absent. */
  readonly mode: DecisionMode | undefined
  /** The `@denyStyle` annotation of a forbid policy: how an MCP lens answers its denials. */
  readonly denyStyle?: DenyStyle
  /** The policy's text, annotations included. */
  readonly text: string
  /** The entity in a `principal == ...` scope, as `Type::"id"` text; undefined for any other scope. */
  readonly principal: string | undefined
  /** The entity in an `action == ...` scope, likewise. */
  readonly action: string | undefined
}

export interface CedarPolicy {
  readonly source: string
  /** In file order: the earlier policy names a decision when several decide alike. */
  readonly policies: readonly CedarPolicyEntry[]
}

export interface CedarLoadOptions {
  /** A Cedar schema file (`.cedarschema` text, or JSON when the name ends in `.json`) to validate against. */
  schema?: string
  maxBytes?: number
}

/** Reads and checks a Cedar policy file (and its schema, when given). */
export function loadCedarPolicy(file: string, options: CedarLoadOptions = {}): CedarPolicy {
  const max = options.maxBytes ?? DEFAULT_MAX_POLICY_BYTES
  const text = readPolicyText(file, max)
  const schema =
    options.schema === undefined
      ? undefined
      : { text: readPolicyText(options.schema, max), source: options.schema }
  return parseCedarPolicy(text, file, schema)
}

/** Line and column (1-based) of a character index. */
function positionAt(text: string, index: number): { line: number; column: number } {
  const before = text.slice(0, index)
  const lineStart = before.lastIndexOf('\n') + 1
  let line = 1
  for (let i = before.indexOf('\n'); i !== -1; i = before.indexOf('\n', i + 1)) line++
  return { line, column: [...before.slice(lineStart)].length + 1 }
}

/** Line and column (1-based) of a UTF-8 byte offset, the unit Cedar's source locations count in. */
function lineColumn(text: string, byteOffset: number): { line: number; column: number } {
  const before = Buffer.from(text, 'utf8').subarray(0, byteOffset).toString('utf8')
  return positionAt(before, before.length)
}

function issueOf(text: string, path: string, e: DetailedError): PolicyIssue {
  const loc = e.sourceLocations?.[0]
  const label = loc?.label ? ` (${loc.label})` : ''
  const help = e.help ? `; ${e.help}` : ''
  return {
    path,
    ...(loc === undefined ? {} : lineColumn(text, loc.start)),
    message: `${e.message}${label}${help}`,
  }
}

/** Where each part starts in the text (a character index), when it appears there verbatim. */
function partOffsets(text: string, parts: readonly string[]): (number | undefined)[] {
  let from = 0
  return parts.map((p) => {
    const at = text.indexOf(p, from)
    if (at === -1) return undefined
    from = at + p.length
    return at
  })
}

/** What svidecar needs of a policy: read from its text, or from Cedar when the reader gives up; a string is an error. */
function policyHead(text: string): PolicyHead | string {
  return readPolicyHead(text) ?? cedarPolicyHead(text)
}

/** The same as Cedar tells it (`policyToJson`): slow, exact. */
export function cedarPolicyHead(text: string): PolicyHead | string {
  const json = policyToJson(text)
  if (json.type === 'failure') return json.errors.map((e) => e.message).join('; ')
  return {
    annotations: (json.json.annotations ?? {}) as Record<string, string | null>,
    effect: json.json.effect,
    principal: scopeEntity(json.json.principal),
    action: scopeEntity(json.json.action),
  }
}

/** The entity of an `==` scope constraint, as `Type::"id"`; undefined for `in`, `is`, slots or none. */
function scopeEntity(c: PrincipalConstraint | ActionConstraint): string | undefined {
  if (c.op !== '==' || !('entity' in c)) return undefined
  const uid = '__entity' in c.entity ? c.entity.__entity : c.entity
  return entityKey(uid.type, uid.id)
}

/** One text for an entity UID, shared by policies' scopes and requests. */
export function entityKey(type: string, id: string): string {
  return `${type}::${JSON.stringify(id)}`
}

/** Refuses a text cedar-wasm's stack cannot hold, before cedar-wasm reads it (nesting.ts says why). */
function refuseDeepNesting(text: string, source: string, path: string): void {
  const problem = nestingProblem(text)
  if (problem === undefined) return
  throw new PolicyError(source, [
    {
      path,
      ...positionAt(text, problem.index),
      message: `${problem.message}: more than cedar-wasm can parse safely`,
    },
  ])
}

/** Checks Cedar policy text; `source` names it in errors, `schema` validates it when given. */
export function parseCedarPolicy(
  text: string,
  source: string,
  schema?: { text: string; source: string },
): CedarPolicy {
  refuseDeepNesting(text, source, '(cedar)')
  const split = policySetTextToParts(text)
  if (split.type === 'failure') {
    throw new PolicyError(
      source,
      split.errors.map((e) => issueOf(text, '(cedar)', e)),
    )
  }
  if (split.policy_templates.length > 0) {
    const at = partOffsets(text, split.policy_templates)[0]
    throw new PolicyError(source, [
      {
        path: '(cedar)',
        ...(at === undefined ? {} : positionAt(text, at)),
        message: 'templates are not supported: svidecar links none, write static policies',
      },
    ])
  }
  // The parts parsed; the whole must parse as one static set too (what the engine will prepare).
  const parsed = checkParsePolicySet({ staticPolicies: text })
  if (parsed.type === 'failure') {
    throw new PolicyError(
      source,
      parsed.errors.map((e) => issueOf(text, '(cedar)', e)),
    )
  }
  const issues: PolicyIssue[] = []
  const offsets = partOffsets(text, split.policies)
  const policies: CedarPolicyEntry[] = []
  const seen = new Map<string, number>()
  split.policies.forEach((policyText, i) => {
    const at = offsets[i]
    // Only located when something is wrong: a position costs a scan of the text before it.
    const where = () => (at === undefined ? {} : positionAt(text, at))
    const head = policyHead(policyText)
    if (typeof head === 'string') {
      issues.push({ path: `policy${i}`, ...where(), message: head })
      return
    }
    const annotations = head.annotations
    const id = annotations.id ?? `policy${i}`
    const first = seen.get(id)
    if (first !== undefined) {
      issues.push({
        path: `policy ${id}`,
        ...where(),
        message: `duplicate policy id "${id}" (first used by policy number ${first + 1} in the file)`,
      })
    } else seen.set(id, i)
    const mode = annotations.mode ?? undefined
    if (mode !== undefined && mode !== 'enforce' && mode !== 'audit') {
      issues.push({
        path: `policy ${id}`,
        ...where(),
        message: `@mode("${mode}"): write "enforce" or "audit"`,
      })
    }
    const denyStyle = annotations.denyStyle ?? undefined
    const styled = (DENY_STYLES as readonly string[]).includes(denyStyle ?? '')
    if (denyStyle !== undefined && !styled) {
      issues.push({
        path: `policy ${id}`,
        ...where(),
        message: `@denyStyle("${denyStyle}"): write "hide", "explain" or "forbid"`,
      })
    }
    policies.push({
      id,
      effect: head.effect,
      mode: mode === 'enforce' || mode === 'audit' ? mode : undefined,
      ...(styled ? { denyStyle: denyStyle as DenyStyle } : {}),
      text: policyText,
      principal: head.principal,
      action: head.action,
    })
  })
  if (issues.length > 0) throw new PolicyError(source, issues)
  if (schema !== undefined) validateAgainst(text, source, policies, schema)
  return { source, policies }
}

function validateAgainst(
  text: string,
  source: string,
  policies: readonly CedarPolicyEntry[],
  schema: { text: string; source: string },
): void {
  refuseDeepNesting(schema.text, schema.source, '(schema)')
  let s: Schema = schema.text
  if (schema.source.endsWith('.json')) {
    try {
      s = JSON.parse(schema.text) as Schema
    } catch (err) {
      throw new PolicyError(schema.source, [{ path: '(json)', message: (err as Error).message }])
    }
  }
  const checked = checkParseSchema(s)
  if (checked.type === 'failure') {
    throw new PolicyError(
      schema.source,
      checked.errors.map((e) => issueOf(schema.text, '(schema)', e)),
    )
  }
  const answer = validate({ schema: s, policies: { staticPolicies: text } })
  if (answer.type === 'failure') {
    throw new PolicyError(
      schema.source,
      answer.errors.map((e) => issueOf(schema.text, '(schema)', e)),
    )
  }
  if (answer.validationErrors.length === 0) return
  // Cedar names policies of a text policy set policy0, policy1, ... in file order.
  throw new PolicyError(
    source,
    answer.validationErrors.map((v) => {
      const n = /^policy(\d+)$/.exec(v.policyId)
      const id = n === null ? v.policyId : (policies[Number(n[1])]?.id ?? v.policyId)
      return issueOf(text, `policy ${id}`, v.error)
    }),
  )
}
