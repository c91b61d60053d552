/** `svidecar policy check FILE` and `svidecar policy explain ...`: the policy engine, offline. */
import { parseArgs } from 'node:util'
import { SpiffeId } from 'workload-api-client'
import { isSvidecarError } from '../errors/index.ts'
import { explainCedar } from '../policy/cedar/explain.ts'
import { loadCedarPolicy } from '../policy/cedar/load.ts'
import type { PolicyContext, PolicyRequest, PolicyResource } from '../policy/engine.ts'
import { type Explanation, explain, formatExplanation } from '../policy/explain.ts'
import { formatIssue, loadPolicyFile, PolicyError } from '../policy/file.ts'
import { explainOpa } from '../policy/opa/explain.ts'

const HELP = `Usage:
  svidecar policy check FILE
  svidecar policy explain --policy FILE --subject ID
      (--route METHOD PATH | --model M | --tool T | --resource URI | --prompt P | --client-request C)
      [--engine builtin|cedar] [--schema FILE] [--mode enforce|audit]
      [--context JSON] [--json]
  svidecar policy explain --engine opa --opa-url URL --opa-package PKG
      --subject ID (--route ... | ...) [--context JSON] [--json]

check     validates a policy file: YAML syntax, unknown fields, SPIFFE IDs and
          patterns, route and URI patterns, CEL conditions, duplicate rule ids.
          Prints every problem as file:line:col: field: message. Exit 0 when
          valid, 1 when not.
explain   decides one request offline with the same engine the sidecar runs:
          allowed or denied, by which rule and why, and the rules that nearly
          matched with what they lacked. Exit 0 allowed, 1 denied (an audit-mode
          pass counts as allowed), 2 for a usage error or an invalid policy.

--context JSON  what conditions see besides subject and resource:
          {"time": "2026-01-01T09:00:00Z", "direction": "inbound",
           "method": "GET", "path": "/x", "headers": {"x-env": "prod"},
           "attributes": {"tokens": 100}, "peer": "spiffe://td/peer"}
--json    print the explanation as JSON
--engine  builtin (default): the policy file format; cedar: a Cedar policy
          set (--schema validates it, --mode audit as policy.mode), each
          policy taken apart; opa: asks the OPA server at --opa-url for the
          package --opa-package, and shows its decision document

Options:
  -h, --help   show this help
`

export async function runPolicy(args: string[]): Promise<number> {
  const [sub, ...rest] = args
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(HELP)
    return sub === undefined ? 2 : 0
  }
  if (sub === 'check') return check(rest)
  if (sub === 'explain') return explainCommand(rest)
  process.stderr.write(`svidecar policy: unknown subcommand "${sub}"\n\n${HELP}`)
  return 2
}

function printLoadError(err: unknown): void {
  if (err instanceof PolicyError) {
    for (const issue of err.issues) process.stderr.write(`${formatIssue(err.where ?? '', issue)}\n`)
    process.stderr.write(`${err.code}: ${err.issues.length} problem${err.issues.length === 1 ? '' : 's'}\n`)
    return
  }
  if (isSvidecarError(err)) {
    process.stderr.write(`${err.code}: ${err.message}\n`)
    return
  }
  throw err
}

function check(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    options: { help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  })
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  if (positionals.length !== 1) {
    process.stderr.write(`svidecar policy check: expected one FILE\n\n${HELP}`)
    return 2
  }
  const file = positionals[0] as string
  try {
    const loaded = loadPolicyFile(file)
    const n = loaded.engine.rules.length
    process.stdout.write(`${file}: ok (${n} rule${n === 1 ? '' : 's'}, mode ${loaded.engine.mode})\n`)
    return 0
  } catch (err) {
    printLoadError(err)
    return 1
  }
}

class UsageError extends Error {}

const CONTEXT_KEYS = new Set(['time', 'direction', 'method', 'path', 'headers', 'attributes', 'peer'])

function parseContext(json: string | undefined): { context: PolicyContext; peer?: SpiffeId } {
  if (json === undefined) return { context: { time: new Date() } }
  let raw: unknown
  try {
    raw = JSON.parse(json)
  } catch (err) {
    throw new UsageError(`--context is not JSON: ${(err as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new UsageError('--context must be a JSON object')
  const o = raw as Record<string, unknown>
  for (const k of Object.keys(o)) {
    if (!CONTEXT_KEYS.has(k))
      throw new UsageError(`--context: unknown key "${k}" (known: ${[...CONTEXT_KEYS].join(', ')})`)
  }
  const str = (k: string): string | undefined => {
    const v = o[k]
    if (v === undefined) return undefined
    if (typeof v !== 'string') throw new UsageError(`--context: "${k}" must be a string`)
    return v
  }
  const time = str('time')
  const date = time === undefined ? new Date() : new Date(time)
  if (Number.isNaN(date.getTime())) throw new UsageError(`--context: "time" is not a date: ${time}`)
  const direction = str('direction')
  if (direction !== undefined && direction !== 'inbound' && direction !== 'outbound') {
    throw new UsageError('--context: "direction" must be inbound or outbound')
  }
  const headers = o.headers
  if (headers !== undefined) {
    if (headers === null || typeof headers !== 'object' || Array.isArray(headers))
      throw new UsageError('--context: "headers" must be an object of strings')
    for (const v of Object.values(headers)) {
      if (typeof v !== 'string') throw new UsageError('--context: "headers" must be an object of strings')
    }
  }
  const attributes = o.attributes
  if (
    attributes !== undefined &&
    (attributes === null || typeof attributes !== 'object' || Array.isArray(attributes))
  ) {
    throw new UsageError('--context: "attributes" must be an object')
  }
  const peerText = str('peer')
  const peer = peerText === undefined ? undefined : parseId(peerText, '--context peer')
  const method = str('method')
  const path = str('path')
  const context: PolicyContext = {
    time: date,
    ...(direction === undefined ? {} : { direction }),
    ...(method === undefined ? {} : { method }),
    ...(path === undefined ? {} : { path }),
    ...(headers === undefined
      ? {}
      : {
          headers: Object.fromEntries(
            Object.entries(headers as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]),
          ),
        }),
    ...(attributes === undefined ? {} : { attributes: attributes as Record<string, unknown> }),
  }
  return peer === undefined ? { context } : { context, peer }
}

function parseId(text: string, what: string): SpiffeId {
  const id = SpiffeId.tryParseResult(text)
  if (id instanceof Error) throw new UsageError(`${what}: ${id.message}`)
  return id
}

interface ExplainArgs {
  engine: 'builtin' | 'cedar' | 'opa'
  policy: string
  schema?: string
  mode?: 'enforce' | 'audit'
  opaUrl?: string
  opaPackage?: string
  subject: string
  resource: PolicyResource
  context?: string
  json: boolean
}

function parseExplainArgs(args: string[]): ExplainArgs | 'help' {
  let policy: string | undefined
  let engine: ExplainArgs['engine'] = 'builtin'
  let schema: string | undefined
  let mode: ExplainArgs['mode']
  let opaUrl: string | undefined
  let opaPackage: string | undefined
  let subject: string | undefined
  let context: string | undefined
  let json = false
  const resources: PolicyResource[] = []
  const take = (i: number, flag: string): string => {
    const v = args[i]
    if (v === undefined) throw new UsageError(`${flag} needs a value`)
    return v
  }
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string
    const eq = a.indexOf('=')
    const flag = a.startsWith('--') && eq !== -1 ? a.slice(0, eq) : a
    const inline = a.startsWith('--') && eq !== -1 ? a.slice(eq + 1) : undefined
    const value = (): string => (inline !== undefined ? inline : take(++i, flag))
    switch (flag) {
      case '-h':
      case '--help':
        return 'help'
      case '--policy':
        policy = value()
        break
      case '--engine': {
        const e = value()
        if (e !== 'builtin' && e !== 'cedar' && e !== 'opa')
          throw new UsageError(`--engine must be builtin, cedar or opa, got "${e}"`)
        engine = e
        break
      }
      case '--schema':
        schema = value()
        break
      case '--mode': {
        const m = value()
        if (m !== 'enforce' && m !== 'audit')
          throw new UsageError(`--mode must be enforce or audit, got "${m}"`)
        mode = m
        break
      }
      case '--opa-url':
        opaUrl = value()
        break
      case '--opa-package':
        opaPackage = value()
        break
      case '--subject':
        subject = value()
        break
      case '--context':
        context = value()
        break
      case '--json':
        json = true
        break
      case '--route': {
        let method: string
        let path: string
        if (inline !== undefined) {
          const parts = inline.split(' ')
          if (parts.length !== 2) throw new UsageError('--route needs METHOD PATH')
          method = parts[0] as string
          path = parts[1] as string
        } else {
          method = take(++i, flag)
          path = take(++i, flag)
        }
        resources.push({ kind: 'http.route', method, path })
        break
      }
      case '--model':
        resources.push({ kind: 'llm.model', name: value() })
        break
      case '--tool':
        resources.push({ kind: 'mcp.tool', name: value() })
        break
      case '--resource':
        resources.push({ kind: 'mcp.resource', uri: value() })
        break
      case '--prompt':
        resources.push({ kind: 'mcp.prompt', name: value() })
        break
      case '--client-request':
        resources.push({ kind: 'mcp.client', name: value() })
        break
      default:
        throw new UsageError(`unknown argument "${a}"`)
    }
  }
  if (engine === 'opa') {
    if (opaUrl === undefined || opaPackage === undefined)
      throw new UsageError('--engine opa needs --opa-url URL and --opa-package PKG')
    if (policy !== undefined) throw new UsageError('--engine opa decides in the OPA server; no --policy')
  } else {
    if (policy === undefined) throw new UsageError('--policy FILE is required')
    if (opaUrl !== undefined || opaPackage !== undefined)
      throw new UsageError('--opa-url and --opa-package go with --engine opa')
  }
  if (engine !== 'cedar' && (schema !== undefined || mode !== undefined))
    throw new UsageError('--schema and --mode go with --engine cedar')
  if (subject === undefined) throw new UsageError('--subject ID is required')
  if (resources.length !== 1)
    throw new UsageError(
      'give exactly one of --route METHOD PATH, --model, --tool, --resource, --prompt, --client-request',
    )
  return {
    engine,
    policy: policy ?? '',
    ...(schema === undefined ? {} : { schema }),
    ...(mode === undefined ? {} : { mode }),
    ...(opaUrl === undefined ? {} : { opaUrl }),
    ...(opaPackage === undefined ? {} : { opaPackage }),
    subject,
    resource: resources[0] as PolicyResource,
    json,
    ...(context === undefined ? {} : { context }),
  }
}

async function explainCommand(args: string[]): Promise<number> {
  let parsed: ExplainArgs | 'help'
  let request: PolicyRequest
  try {
    parsed = parseExplainArgs(args)
    if (parsed === 'help') {
      process.stdout.write(HELP)
      return 0
    }
    const subject = parseId(parsed.subject, '--subject')
    const { context, peer } = parseContext(parsed.context)
    request = { subject, resource: parsed.resource, context, ...(peer === undefined ? {} : { peer }) }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`svidecar policy explain: ${err.message}\n\n${HELP}`)
    return 2
  }
  let x: Explanation
  try {
    x = await explanation(parsed, request)
  } catch (err) {
    printLoadError(err)
    return 2
  }
  process.stdout.write(parsed.json ? `${JSON.stringify(x, null, 2)}\n` : formatExplanation(x))
  return x.decision.decision === 'allow' ? 0 : 1
}

/** The explanation from the engine the arguments name. */
async function explanation(a: ExplainArgs, request: PolicyRequest): Promise<Explanation> {
  if (a.engine === 'cedar') {
    const policy = loadCedarPolicy(a.policy, a.schema === undefined ? {} : { schema: a.schema })
    return explainCedar(policy, request, a.mode)
  }
  if (a.engine === 'opa') return explainOpa(a.opaUrl as string, a.opaPackage as string, request)
  return explain(loadPolicyFile(a.policy).engine, request)
}
