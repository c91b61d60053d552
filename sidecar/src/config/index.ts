/**
 * The sidecar's configuration: one YAML file, validated at start against a
 * schema and then for meaning (SPIFFE IDs, addresses, routes that name
 * existing upstreams). Every problem is reported with file, line, column and
 * field path, all at once. A few deployment-specific values come from the
 * environment (see ENV below).
 */
import { readFileSync } from 'node:fs'
import { matchPattern, resolveEndpointAddress, SpiffeId, TrustDomain } from 'workload-api-client'
import type { Document } from 'yaml'
import type { BudgetsConfig } from '../budget/limits.ts'
import { SvidecarError } from '../errors/index.ts'
import type { CredentialSource } from '../lens/llm/credential.ts'
import type { ProviderSpec } from '../lens/llm/providers.ts'
import type { TracingConfig } from '../observe/tracing.ts'
import type { AuthorizerKind, AuthorizerSpec } from '../tls/authorizer.ts'
import { TLS_PROFILES, type TlsProfile } from '../tls/profiles.ts'
import { type HostPort, isLoopback, parseHostPort } from './address.ts'
import {
  type BoundAddress,
  checkAddressConflicts,
  checkCaFile,
  checkRoutesReachable,
  peerIdHeader,
} from './checks.ts'
import { type McpConfig, mcpConfig, mcpSection } from './mcp.ts'
import { policyHeader } from './policy-headers.ts'
import {
  bool,
  type Check,
  duration,
  exactlyOne,
  field,
  formatPath,
  type Issues,
  int,
  list,
  nonZeroDuration,
  obj,
  oneOf,
  type Path,
  record,
  str,
  toJsonSchema,
  withJsonSchema,
} from './schema.ts'
import { parseYaml } from './yaml.ts'

export type { AuthorizerSpec, HostPort, TlsProfile }

export interface InboundConfig {
  name: string
  address: HostPort
  forwardTo: URL
  peerIdHeader: string
  authorize: AuthorizerSpec
  /** The listener's own `tls:` over the global one. */
  tls: { profile: TlsProfile; handshakeTimeout: number }
  /** The MCP lens on these paths (config/mcp.ts). */
  mcp?: McpConfig
}
export interface RouteConfig {
  host?: string
  pathPrefix?: string
  /** Where the route goes; a route with `lens: llm` names no upstream (its provider does, per call). */
  upstream?: string
  lens?: 'llm'
}
export interface OutboundConfig {
  name: string
  address: HostPort
  routes: RouteConfig[]
  allowNonLoopback: boolean
  /** The MCP lens on these paths (config/mcp.ts). */
  mcp?: McpConfig
}
export interface UpstreamConfig {
  name: string
  url: URL
  kind: 'spiffe' | 'https' | 'plaintext'
  spiffe?: AuthorizerSpec
  caFile?: string
  /** The upstream's own `tls.profile` over the global one. */
  tlsProfile: TlsProfile
}
export interface LimitsConfig {
  maxHeaderBytes: number
  maxHeaderCount: number
  headersTimeout: number
  requestTimeout: number
  idleTimeout: number
  bodyIdleTimeout: number
  maxConnections: number
  connectTimeout: number
  maxBodyBytes: number
}
export type PolicyEngineName = 'builtin' | 'cedar' | 'opa'

export interface PolicyConfig {
  engine: PolicyEngineName
  /** The policy file (built-in format or Cedar); not with OPA. */
  file?: string
  /** Cedar only: a schema to validate the policies against. */
  schema?: string
  /** Cedar only: `audit` lets every denial through and reports it. */
  mode?: 'enforce' | 'audit'
  /** OPA only: the decision service. */
  opa?: { url: string; package: string; timeoutMs: number; cacheEntries: number; cacheTtlMs: number }
  /** Request headers (lower-case) every engine sees in the context; never credentials. */
  headers?: string[]
}

/** The LLM lens and the providers behind routes with `lens: llm`. */
export interface LlmConfig {
  /** The most request body bytes the lens reads to find the model. */
  bodyLimit: number
  maxDepth: number
  /** What a path under an LLM route that is no LLM endpoint gets: refused, or forwarded to a provider. */
  unknownPaths: 'deny' | 'forward'
  providers: ProviderSpec[]
}

export interface SidecarConfig {
  source: string
  workloadApi: { socket?: string; hint?: string; spiffeId?: string; startupTimeout: number }
  admin: { address: HostPort }
  drainTimeout: number
  tls: { minVersion: 'TLSv1.2' | 'TLSv1.3'; profile: TlsProfile; handshakeTimeout: number }
  inbound: InboundConfig[]
  outbound: OutboundConfig[]
  upstreams: Map<string, UpstreamConfig>
  limits: LimitsConfig
  log: { level: 'debug' | 'info' | 'warn' | 'error' }
  /** The policy engine and its source; without it the listeners' authorizers alone decide. */
  policy?: PolicyConfig
  audit: { output: 'stdout' | 'file'; path?: string; maxBytes: number; maxFiles: number }
  metrics: { policyRuleLabel: boolean }
  llm?: LlmConfig
  /** OpenTelemetry spans over OTLP/HTTP; off when absent. */
  tracing?: TracingConfig
  /** Token and request budgets for LLM calls, by SPIFFE ID (budget/limits.ts); absent, calls are not budgeted. */
  budgets?: BudgetsConfig
  warnings: string[]
}

export interface ConfigIssue {
  path: string
  line?: number
  column?: number
  /** The environment variable the value came from, when it overrode the file. */
  env?: string
  message: string
}

export class ConfigError extends SvidecarError {
  readonly issues: readonly ConfigIssue[]
  constructor(source: string, issues: ConfigIssue[]) {
    const lines = issues.map((i) =>
      i.env === undefined
        ? `${source}${i.line === undefined ? '' : `:${i.line}:${i.column}`}: ${i.path}: ${i.message}`
        : `environment variable ${i.env}: ${i.path}: ${i.message}`,
    )
    super(
      'SVD_CONFIG_INVALID',
      `${issues.length} problem${issues.length === 1 ? '' : 's'} in ${source}:\n  ${lines.join('\n  ')}`,
      {
        where: source,
      },
    )
    this.issues = issues
  }
}

export const ENV = {
  workloadApiSocket: 'SVIDECAR_WORKLOAD_API_SOCKET',
  adminAddress: 'SVIDECAR_ADMIN_ADDRESS',
  listenerAddressPrefix: 'SVIDECAR_LISTENER_',
} as const

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

const address: Check<HostPort> = (v, path, issues) => {
  const s = str()(v, path, issues)
  if (s === undefined) return undefined
  const parsed = parseHostPort(s)
  if (typeof parsed === 'string') {
    issues.add(path, `"${s}": ${parsed}`)
    return undefined
  }
  return parsed
}

const url: Check<URL> = (v, path, issues) => {
  const s = str()(v, path, issues)
  if (s === undefined) return undefined
  try {
    const u = new URL(s)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error()
    if (u.username || u.password) {
      issues.add(path, 'credentials do not belong in a URL')
      return undefined
    }
    if (u.search || u.hash) {
      issues.add(path, 'a query or fragment does not belong in an upstream URL')
      return undefined
    }
    return u
  } catch {
    issues.add(path, `"${s}" is not an http:// or https:// URL`)
    return undefined
  }
}

const spiffeId: Check<string> = (v, path, issues) => {
  const s = str()(v, path, issues)
  if (s === undefined) return undefined
  if (SpiffeId.tryParse(s) === undefined) {
    issues.add(path, `"${s}" is not a valid SPIFFE ID`)
    return undefined
  }
  return s
}

const endpoint: Check<string> = (v, path, issues) => {
  const s = str()(v, path, issues)
  if (s === undefined) return undefined
  try {
    resolveEndpointAddress(s, {})
    return s
  } catch (err) {
    issues.add(path, (err as Error).message)
    return undefined
  }
}

const authorizerKind: Check<AuthorizerKind> = exactlyOne<AuthorizerKind>({
  any: (v, path, issues) => {
    if (v !== true) {
      issues.add(path, 'expected true')
      return undefined
    }
    return { any: true }
  },
  exact: (v, path, issues) => {
    const id = spiffeId(v, path, issues)
    return id === undefined ? undefined : { exact: id }
  },
  oneOf: (v, path, issues) => {
    const ids = list(spiffeId)(v, path, issues)
    if (ids !== undefined && ids.length === 0) {
      issues.add(path, 'needs at least one SPIFFE ID')
      return undefined
    }
    return ids === undefined ? undefined : { oneOf: ids }
  },
  trustDomain: (v, path, issues) => {
    const s = str()(v, path, issues)
    if (s === undefined) return undefined
    if (TrustDomain.tryParse(s) === undefined) {
      issues.add(path, `"${s}" is not a valid trust domain name`)
      return undefined
    }
    return { trustDomain: s }
  },
  pattern: (v, path, issues) => {
    const s = str()(v, path, issues)
    if (s === undefined) return undefined
    try {
      matchPattern(s)
      return { pattern: s }
    } catch (err) {
      issues.add(path, (err as Error).message)
      return undefined
    }
  },
})

// Never echoed in an issue: the URL may carry the Redis password.
const redisUrl: Check<string> = (v, path, issues) => {
  if (typeof v === 'string' && /^rediss?:\/\/\S+$/.test(v)) return v
  issues.add(path, 'expected a redis:// or rediss:// URL (the value is not shown: it may hold a password)')
  return undefined
}

// Seconds, not minutes: a handshake that has not finished holds a connection slot (Node's default is 120 s).
const HANDSHAKE_TIMEOUT_DEFAULT = 10_000
const HANDSHAKE_TIMEOUT_MAX = 60_000

const handshakeTimeout: Check<number> = (v, path, issues) => {
  const ms = duration(v, path, issues)
  if (ms === undefined) return undefined
  if (ms < 1 || ms > HANDSHAKE_TIMEOUT_MAX) {
    issues.add(path, `expected a duration from 1ms to ${HANDSHAKE_TIMEOUT_MAX / 1000}s, got ${ms} ms`)
    return undefined
  }
  return ms
}

const profile = oneOf(TLS_PROFILES)

/** One kind, or a list of kinds: a peer any of them allows is allowed. */
const authorizer: Check<AuthorizerSpec> = (v, path, issues) => {
  if (!Array.isArray(v)) return authorizerKind(v, path, issues)
  const kinds = list(authorizerKind)(v, path, issues)
  if (kinds !== undefined && kinds.length === 0) {
    issues.add(path, 'needs at least one authorizer')
    return undefined
  }
  return kinds
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** A share from 0 to 1. */
const ratio: Check<number> = (v, path, issues) => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    issues.add(path, `expected a number from 0 to 1, got ${JSON.stringify(v)}`)
    return undefined
  }
  return v
}
// What the hand-written checks above accept, for config.schema.json (a JSON Schema cannot say all of it).
const TD = '[a-z0-9._-]+'
const SPIFFE_ID_SCHEMA = {
  type: 'string',
  pattern: `^spiffe://${TD}(/[A-Za-z0-9._-]+)*$`,
  description: 'a SPIFFE ID, spiffe://trust-domain/path',
}
withJsonSchema(address, {
  type: 'string',
  pattern: '^\\s*(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}\\s*$',
  description: 'host:port; an IPv6 host in brackets',
})
withJsonSchema(url, { type: 'string', pattern: '^https?://', description: 'an http:// or https:// URL' })
withJsonSchema(spiffeId, SPIFFE_ID_SCHEMA)
withJsonSchema(endpoint, {
  type: 'string',
  pattern: '^(unix|tcp):',
  description: 'a Workload API endpoint: unix:///path or tcp://ip:port',
})
withJsonSchema(handshakeTimeout, () => toJsonSchema(nonZeroDuration('')))
withJsonSchema(ratio, { type: 'number', minimum: 0, maximum: 1, description: 'a share from 0 to 1' })
withJsonSchema(redisUrl, {
  type: 'string',
  pattern: '^rediss?://',
  description: 'a redis:// or rediss:// URL (never logged: it may carry a password)',
})
withJsonSchema(authorizerKind, {
  type: 'object',
  description: 'which peers: any, an exact ID, one of a list, a trust domain, or a pattern',
  properties: {
    any: { const: true },
    exact: SPIFFE_ID_SCHEMA,
    oneOf: { type: 'array', items: SPIFFE_ID_SCHEMA, minItems: 1 },
    trustDomain: { type: 'string', pattern: `^${TD}$` },
    pattern: {
      type: 'string',
      pattern: `^spiffe://${TD}(/[A-Za-z0-9._*-]+)*$`,
      description: '* stands for one path segment, ** for any number',
    },
  },
  minProperties: 1,
  maxProperties: 1,
  additionalProperties: false,
})
withJsonSchema(authorizer, () => ({
  anyOf: [toJsonSchema(authorizerKind), { type: 'array', items: toJsonSchema(authorizerKind), minItems: 1 }],
}))

const AUDIT_DEFAULTS = {
  output: 'stdout' as const,
  path: undefined,
  maxBytes: 100 * 1024 * 1024,
  maxFiles: 5,
}

// A long conversation with tool schemas fits; a body the lens must read whole is never unbounded.
const LLM_BODY_LIMIT_DEFAULT = 4 * 1024 * 1024
const LLM_MAX_DEPTH_DEFAULT = 64

/** The whole file's schema; `fieldPaths(SCHEMA)` lists its fields. */
export const SCHEMA = obj({
  workloadApi: field(
    obj({
      socket: field(endpoint),
      hint: field(str()),
      spiffeId: field(spiffeId),
      // 0 waits for ever (listeners stay up and refuse traffic); `svidecar run` exits non-zero when it passes.
      startupTimeout: field(duration, { default: 30_000 }),
    }),
    { default: { startupTimeout: 30_000, socket: undefined, hint: undefined, spiffeId: undefined } },
  ),
  admin: field(obj({ address: field(address, { default: { host: '127.0.0.1', port: 15000 } }) }), {
    default: { address: { host: '127.0.0.1', port: 15000 } },
  }),
  drainTimeout: field(nonZeroDuration('in-flight requests would be cut at once on SIGTERM'), {
    default: 20_000,
  }),
  tls: field(
    obj({
      minVersion: field(oneOf(['TLSv1.2', 'TLSv1.3'] as const), { default: 'TLSv1.2' as const }),
      profile: field(profile, { default: 'intermediate' as const }),
      handshakeTimeout: field(handshakeTimeout, { default: HANDSHAKE_TIMEOUT_DEFAULT }),
    }),
    {
      default: {
        minVersion: 'TLSv1.2' as const,
        profile: 'intermediate' as const,
        handshakeTimeout: HANDSHAKE_TIMEOUT_DEFAULT,
      },
    },
  ),
  inbound: field(
    list(
      obj({
        name: field(str({ pattern: NAME, what: 'a name of lower-case letters, digits and -' }), {
          required: true,
        }),
        address: field(address, { required: true }),
        forwardTo: field(url, { required: true }),
        peerIdHeader: field(peerIdHeader, { default: 'x-spiffe-id' }),
        authorize: field(authorizer, { required: true }),
        tls: field(obj({ profile: field(profile), handshakeTimeout: field(handshakeTimeout) })),
        mcp: field(mcpSection),
      }),
    ),
    { default: [] },
  ),
  outbound: field(
    list(
      obj({
        name: field(str({ pattern: NAME, what: 'a name of lower-case letters, digits and -' }), {
          required: true,
        }),
        address: field(address, { required: true }),
        allowNonLoopback: field(bool, { default: false }),
        routes: field(
          list(
            obj({
              match: field(
                obj({
                  host: field(str()),
                  pathPrefix: field(str({ pattern: /^\/[^?#]*$/, what: 'a path starting with /' })),
                }),
              ),
              upstream: field(str()),
              lens: field(oneOf(['llm'] as const)),
            }),
          ),
          { required: true },
        ),
        mcp: field(mcpSection),
      }),
    ),
    { default: [] },
  ),
  upstreams: field(
    record(
      obj({
        url: field(url, { required: true }),
        spiffe: field(authorizer),
        allowPlaintext: field(bool, { default: false }),
        caFile: field(str()),
        tls: field(obj({ profile: field(profile) })),
      }),
      NAME,
      'a name of lower-case letters, digits and -',
    ),
    { default: new Map() },
  ),
  limits: field(
    obj({
      maxHeaderBytes: field(int(1024, 1024 * 1024), { default: 16_384 }),
      maxHeaderCount: field(int(1, 10_000), { default: 100 }),
      headersTimeout: field(nonZeroDuration('Node would never cut off a client that sends headers slowly'), {
        default: 10_000,
      }),
      requestTimeout: field(duration, { default: 0 }),
      idleTimeout: field(nonZeroDuration('idle keep-alive connections would stay open forever'), {
        default: 60_000,
      }),
      // 0 turns the body idle limit off.
      bodyIdleTimeout: field(duration, { default: 30_000 }),
      maxConnections: field(int(1, 1_000_000), { default: 4096 }),
      connectTimeout: field(nonZeroDuration('connections to upstreams would fail or never time out'), {
        default: 5000,
      }),
      maxBodyBytes: field(int(0, Number.MAX_SAFE_INTEGER), { default: 0 }),
    }),
    { default: {} as never },
  ),
  log: field(
    obj({ level: field(oneOf(['debug', 'info', 'warn', 'error'] as const), { default: 'info' as const }) }),
    {
      default: { level: 'info' as const },
    },
  ),
  policy: field(
    obj({
      engine: field(oneOf(['builtin', 'cedar', 'opa'] as const), { default: 'builtin' as const }),
      file: field(str()),
      schema: field(str()),
      mode: field(oneOf(['enforce', 'audit'] as const)),
      opa: field(
        obj({
          url: field(str({ pattern: /^https?:\/\/[^/?#@]+\/?$/, what: 'an http(s):// origin' }), {
            required: true,
          }),
          package: field(
            str({ pattern: /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/, what: 'a Rego package' }),
            {
              required: true,
            },
          ),
          timeout: field(nonZeroDuration('every decision would time out and deny'), { default: 50 }),
          cacheEntries: field(int(0, 1_000_000), { default: 10_000 }),
          cacheTtl: field(duration, { default: 1000 }),
        }),
      ),
      headers: field(list(policyHeader)),
    }),
  ),
  audit: field(
    obj({
      output: field(oneOf(['stdout', 'file'] as const), { default: 'stdout' as const }),
      path: field(str()),
      maxBytes: field(int(4096, Number.MAX_SAFE_INTEGER), { default: AUDIT_DEFAULTS.maxBytes }),
      maxFiles: field(int(0, 1000), { default: AUDIT_DEFAULTS.maxFiles }),
    }),
    { default: AUDIT_DEFAULTS },
  ),
  metrics: field(obj({ policyRuleLabel: field(bool, { default: false }) }), {
    default: { policyRuleLabel: false },
  }),
  llm: field(
    obj({
      bodyLimit: field(int(1024, 64 * 1024 * 1024), { default: LLM_BODY_LIMIT_DEFAULT }),
      maxDepth: field(int(2, 1000), { default: LLM_MAX_DEPTH_DEFAULT }),
      unknownPaths: field(oneOf(['deny', 'forward'] as const), { default: 'deny' as const }),
      providers: field(
        record(
          obj({
            kind: field(oneOf(['openai', 'anthropic', 'openai-compatible'] as const), { required: true }),
            upstream: field(str(), { required: true }),
            models: field(list(str()), { default: ['*'] }),
            credential: field(
              exactlyOne<CredentialSource>({
                file: (v, path, issues) => {
                  const file = str()(v, path, issues)
                  return file === undefined ? undefined : { file }
                },
                env: (v, path, issues) => {
                  const env = str({
                    pattern: /^[A-Za-z_][A-Za-z0-9_]*$/,
                    what: 'an environment variable name',
                  })(v, path, issues)
                  return env === undefined ? undefined : { env }
                },
              }),
            ),
            anthropicVersion: field(str({ pattern: /^[\x21-\x7e]+$/, what: 'a header value' })),
          }),
          NAME,
          'a name of lower-case letters, digits and -',
        ),
        { required: true },
      ),
    }),
  ),
  budgets: field(
    obj({
      defaultMaxTokens: field(int(1, 10_000_000), { default: 4096 }),
      extendTokens: field(int(1, 10_000_000), { default: 256 }),
      redis: field(
        obj({
          url: field(redisUrl, { required: true }),
          keyPrefix: field(str(), { default: 'svidecar:budget:' }),
          timeout: field(nonZeroDuration('every budget check would time out'), { default: 250 }),
          onUnavailable: field(oneOf(['deny', 'allow'] as const), { default: 'deny' as const }),
        }),
      ),
      limits: field(
        list(
          obj({
            name: field(str({ pattern: NAME, what: 'a name of lower-case letters, digits and -' }), {
              required: true,
            }),
            subjects: field(list(str()), { required: true }),
            models: field(list(str())),
            perModel: field(bool, { default: false }),
            tokensPerMinute: field(int(1, Number.MAX_SAFE_INTEGER)),
            tokensPerDay: field(int(1, Number.MAX_SAFE_INTEGER)),
            requestsPerMinute: field(int(1, Number.MAX_SAFE_INTEGER)),
          }),
        ),
        { required: true },
      ),
    }),
  ),
  tracing: field(
    obj({
      otlp: field(
        obj({
          endpoint: field(url, { required: true }),
          headers: field(record(str(), HEADER_NAME, 'an HTTP header name'), { default: new Map() }),
          timeout: field(nonZeroDuration('every export would time out'), { default: 10_000 }),
        }),
        { required: true },
      ),
      sampleRatio: field(ratio, { default: 1 }),
      serviceName: field(str(), { default: 'svidecar' }),
    }),
  ),
})

const LIMIT_DEFAULTS: LimitsConfig = {
  maxHeaderBytes: 16_384,
  maxHeaderCount: 100,
  headersTimeout: 10_000,
  requestTimeout: 0,
  idleTimeout: 60_000,
  bodyIdleTimeout: 30_000,
  maxConnections: 4096,
  connectTimeout: 5000,
  maxBodyBytes: 0,
}

/** Reads and validates a configuration file. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): SidecarConfig {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new SvidecarError(
      'SVD_CONFIG_UNREADABLE',
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        where: path,
        cause: err,
      },
    )
  }
  return parseConfig(text, path, env)
}

export function parseConfig(
  text: string,
  source: string,
  env: NodeJS.ProcessEnv = process.env,
): SidecarConfig {
  const { doc, lineCounter, syntaxIssues } = parseYaml(text)
  const found: ConfigIssue[] = [...syntaxIssues]
  const where = (path: Path): { line?: number; column?: number } => {
    // The deepest node of the path that exists in the file.
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined
      const pair = n > 0 ? findKeyNode(doc, path.slice(0, n)) : undefined
      const range = pair?.range ?? node?.range
      if (range) {
        const pos = lineCounter.linePos(range[0])
        return { line: pos.line, column: pos.col }
      }
    }
    return {}
  }
  if (found.length > 0) throw new ConfigError(source, found)
  let raw: unknown
  try {
    raw = doc.toJS({ maxAliasCount: 20 }) ?? {}
  } catch (err) {
    throw new ConfigError(source, [{ path: '(yaml)', message: (err as Error).message }])
  }
  const overrides: EnvOverride[] = []
  const issues: Issues = {
    add: (path, message) => {
      // A value the environment put there is reported as coming from that variable, not from a file line.
      const from = overrides.find((o) => o.path.every((p, k) => path[k] === p))
      found.push(
        from === undefined
          ? { path: formatPath(path), ...where(path), message }
          : { path: formatPath(path), env: from.variable, message },
      )
    },
  }
  applyEnv(raw, env, issues, overrides)
  const parsed = SCHEMA(raw, [], issues)
  // Meaning checks run on every part that passed the schema, so one run shows every problem.
  if (!isMapping(raw)) throw new ConfigError(source, found)
  const view: View = parsed ?? salvage(raw)
  // Per-listener and per-upstream TLS settings fall back to these (defaults when the tls section failed).
  const tlsDefaults = view.tls ?? {
    profile: 'intermediate' as const,
    handshakeTimeout: HANDSHAKE_TIMEOUT_DEFAULT,
  }

  const warnings: string[] = []
  const upstreams = new Map<string, UpstreamConfig>()
  for (const [name, u] of view.upstreams) {
    if (u === undefined) continue
    const path = ['upstreams', name]
    let kind: UpstreamConfig['kind']
    if (u.spiffe !== undefined) {
      kind = 'spiffe'
      if (u.url.protocol !== 'https:')
        issues.add([...path, 'url'], 'a SPIFFE (mTLS) upstream needs an https:// URL')
    } else if (u.url.protocol === 'https:') kind = 'https'
    else {
      kind = 'plaintext'
      if (u.tls !== undefined) issues.add([...path, 'tls'], 'TLS settings need an https:// upstream')
      if (!u.allowPlaintext) issues.add([...path, 'url'], 'plaintext http:// needs allowPlaintext: true')
      else
        warnings.push(
          `upstream ${name} is plaintext (${u.url.origin}): traffic to it is neither encrypted nor authenticated`,
        )
    }
    if (u.caFile !== undefined) {
      if (kind === 'https') checkCaFile(u.caFile, [...path, 'caFile'], issues)
      else
        issues.add(
          [...path, 'caFile'],
          kind === 'spiffe'
            ? 'a SPIFFE upstream is verified against the trust bundle; caFile applies to https:// upstreams without spiffe'
            : 'caFile applies to https:// upstreams only',
        )
    }
    upstreams.set(name, {
      name,
      url: u.url,
      kind,
      ...(u.spiffe === undefined ? {} : { spiffe: u.spiffe }),
      ...(u.caFile === undefined ? {} : { caFile: u.caFile }),
      tlsProfile: u.tls?.profile ?? tlsDefaults.profile,
    })
  }
  // Names even of upstreams that failed the schema; with no usable upstreams mapping, routes are not checked.
  const upstreamNames =
    raw.upstreams === undefined || raw.upstreams === null || isMapping(raw.upstreams)
      ? new Set(isMapping(raw.upstreams) ? Object.keys(raw.upstreams) : [])
      : undefined
  const bound: BoundAddress[] = []
  if (view.admin !== undefined)
    bound.push({ path: ['admin', 'address'], what: 'the admin listener', address: view.admin.address })
  const names = new Set<string>()
  const inbound: InboundConfig[] = present(view.inbound).map(([l, i]) => {
    bound.push({ path: ['inbound', i, 'address'], what: `inbound listener ${l.name}`, address: l.address })
    if (names.has(l.name)) issues.add(['inbound', i, 'name'], `listener name "${l.name}" is used twice`)
    names.add(l.name)
    if (l.forwardTo.protocol !== 'http:' || !isLoopback(l.forwardTo.hostname.replace(/^\[|\]$/g, ''))) {
      issues.add(['inbound', i, 'forwardTo'], 'the local app must be an http:// address on loopback')
    }
    const { mcp, ...rest } = l
    return {
      ...rest,
      ...(mcp === undefined ? {} : { mcp: mcpConfig(mcp) }),
      peerIdHeader: l.peerIdHeader.toLowerCase(),
      tls: {
        profile: l.tls?.profile ?? tlsDefaults.profile,
        handshakeTimeout: l.tls?.handshakeTimeout ?? tlsDefaults.handshakeTimeout,
      },
    }
  })
  const outbound: OutboundConfig[] = present(view.outbound).map(([l, i]) => {
    bound.push({ path: ['outbound', i, 'address'], what: `outbound listener ${l.name}`, address: l.address })
    if (names.has(l.name)) issues.add(['outbound', i, 'name'], `listener name "${l.name}" is used twice`)
    names.add(l.name)
    if (!l.allowNonLoopback && !isLoopback(l.address.host)) {
      issues.add(
        ['outbound', i, 'address'],
        'a plaintext outbound listener must bind to loopback (or set allowNonLoopback: true)',
      )
    }
    const routes = l.routes.map((r, j) => {
      const at = ['outbound', i, 'routes', j]
      if (r.upstream === undefined && r.lens === undefined) issues.add(at, 'needs an upstream or lens: llm')
      if (r.upstream !== undefined && r.lens !== undefined)
        issues.add(at, 'a route with lens: llm goes to the provider of each call; it names no upstream')
      if (r.lens === 'llm' && (raw.llm === undefined || raw.llm === null))
        issues.add([...at, 'lens'], 'lens: llm needs the llm section with its providers')
      if (r.upstream !== undefined && upstreamNames !== undefined && !upstreamNames.has(r.upstream))
        issues.add([...at, 'upstream'], `no upstream named "${r.upstream}"`)
      return {
        ...(r.upstream === undefined ? {} : { upstream: r.upstream }),
        ...(r.lens === undefined ? {} : { lens: r.lens }),
        ...(r.match?.host === undefined ? {} : { host: r.match.host }),
        ...(r.match?.pathPrefix === undefined ? {} : { pathPrefix: r.match.pathPrefix }),
      }
    })
    if (routes.length === 0) issues.add(['outbound', i, 'routes'], 'needs at least one route')
    checkRoutesReachable(routes, ['outbound', i, 'routes'], issues)
    return {
      name: l.name,
      address: l.address,
      routes,
      allowNonLoopback: l.allowNonLoopback,
      ...(l.mcp === undefined ? {} : { mcp: mcpConfig(l.mcp) }),
    }
  })
  checkAddressConflicts(bound, issues)
  // A section that is there but not a list has its own schema problem already.
  const listed = (key: string) => {
    const v = raw[key]
    return Array.isArray(v) ? v.length : v === undefined || v === null ? 0 : 1
  }
  if (listed('inbound') + listed('outbound') === 0)
    issues.add([], 'at least one inbound or outbound listener is needed')
  if (view.workloadApi?.hint !== undefined && view.workloadApi.spiffeId !== undefined) {
    issues.add(['workloadApi'], 'set hint or spiffeId, not both')
  }
  const limits = view.limits
  if (limits !== undefined && limits.requestTimeout > 0 && limits.headersTimeout > limits.requestTimeout) {
    // node:http refuses to create the server (ERR_OUT_OF_RANGE), so `run` would fail at start.
    issues.add(
      ['limits', 'headersTimeout'],
      `${limits.headersTimeout} ms is longer than requestTimeout (${limits.requestTimeout} ms); the headers are part of the request`,
    )
  }
  const audit = view.audit
  if (audit?.output === 'file' && audit.path === undefined)
    issues.add(['audit', 'path'], 'is required with output: file')
  if (audit?.output === 'stdout' && audit.path !== undefined)
    issues.add(['audit', 'path'], 'applies to output: file only')
  const policy = parsed?.policy
  if (policy !== undefined) {
    if (policy.engine === 'opa') {
      if (policy.opa === undefined) issues.add(['policy', 'opa'], 'is required with engine: opa')
      if (policy.file !== undefined)
        issues.add(['policy', 'file'], 'engine: opa decides in the OPA server; no file')
    } else {
      if (policy.file === undefined)
        issues.add(['policy', 'file'], `is required with engine: ${policy.engine}`)
      if (policy.opa !== undefined) issues.add(['policy', 'opa'], 'applies to engine: opa only')
    }
    // The default name too: the outbound side strips it from what the app sends, so it never means anything there.
    const peerHeaders = new Set(['x-spiffe-id', ...inbound.map((l) => l.peerIdHeader)])
    policy.headers?.forEach((h, i) => {
      if (peerHeaders.has(h))
        issues.add(
          ['policy', 'headers', i],
          `"${h}" is the sidecar's peer-ID header: in a request it holds whatever the client wrote, not the verified ID (conditions read subject.id)`,
        )
    })
    if (policy.engine !== 'cedar') {
      if (policy.schema !== undefined) issues.add(['policy', 'schema'], 'applies to engine: cedar only')
      // The built-in format and OPA say audit per rule (or per policy) in the policy itself.
      if (policy.mode !== undefined) issues.add(['policy', 'mode'], 'applies to engine: cedar only')
    }
  }
  const llmView = parsed === undefined ? salvageLlm(raw) : parsed.llm
  const llm = llmView === undefined ? undefined : llmConfig(llmView, upstreamNames, issues)
  // Counted in the file, not in what passed the schema: a provider that failed it was reported already.
  if (isMapping(raw.llm) && isMapping(raw.llm.providers) && Object.keys(raw.llm.providers).length === 0)
    issues.add(['llm', 'providers'], 'needs at least one provider')
  const budgets = parsed?.budgets
  if (budgets !== undefined) checkBudgets(budgets, issues)
  // Budgets count what the LLM lens reads (or MCP sampling an outbound MCP lens sees); without either they would
  // silently count nothing.
  if (
    budgets !== undefined &&
    parsed?.llm === undefined &&
    !parsed?.outbound?.some((o) => o.mcp !== undefined)
  )
    issues.add(
      ['budgets'],
      'applies to LLM calls and MCP sampling: add the llm section and a route with lens: llm, or an outbound mcp section',
    )
  if (parsed === undefined || found.length > 0)
    throw new ConfigError(source, found.length ? found : [{ path: '(root)', message: 'invalid' }])

  const socket = env[ENV.workloadApiSocket] || parsed.workloadApi.socket
  return {
    source,
    workloadApi: {
      startupTimeout: parsed.workloadApi.startupTimeout,
      ...(socket ? { socket } : {}),
      ...(parsed.workloadApi.hint === undefined ? {} : { hint: parsed.workloadApi.hint }),
      ...(parsed.workloadApi.spiffeId === undefined ? {} : { spiffeId: parsed.workloadApi.spiffeId }),
    },
    admin: parsed.admin,
    drainTimeout: parsed.drainTimeout,
    tls: parsed.tls,
    inbound,
    outbound,
    upstreams,
    limits: { ...LIMIT_DEFAULTS, ...parsed.limits },
    log: parsed.log,
    ...(policy === undefined ? {} : { policy: policyConfig(policy) }),
    audit: {
      output: parsed.audit.output,
      ...(parsed.audit.path === undefined ? {} : { path: parsed.audit.path }),
      maxBytes: parsed.audit.maxBytes,
      maxFiles: parsed.audit.maxFiles,
    },
    metrics: parsed.metrics,
    ...(llm === undefined ? {} : { llm }),
    ...(parsed.tracing === undefined
      ? {}
      : {
          tracing: {
            otlp: {
              endpoint: parsed.tracing.otlp.endpoint.href,
              headers: parsed.tracing.otlp.headers,
              timeoutMs: parsed.tracing.otlp.timeout,
            },
            sampleRatio: parsed.tracing.sampleRatio,
            serviceName: parsed.tracing.serviceName,
          },
        }),
    ...(budgets === undefined ? {} : { budgets: budgetsConfig(budgets) }),
    warnings,
  }
}

/** The llm section with only the providers that pass the schema on their own, for the meaning checks. */
function salvageLlm(doc: Record<string, unknown>): Parsed['llm'] | undefined {
  const llm = doc.llm
  if (!isMapping(llm)) return undefined
  const quiet: Issues = { add() {} }
  const providers = isMapping(llm.providers) ? llm.providers : {}
  const good = Object.entries(providers).filter(
    ([name, p]) => SCHEMA({ llm: { providers: { [name]: p } } }, [], quiet) !== undefined,
  )
  return SCHEMA({ llm: { ...llm, providers: Object.fromEntries(good) } }, [], quiet)?.llm
}

function llmConfig(
  l: NonNullable<Parsed['llm']>,
  upstreamNames: Set<string> | undefined,
  issues: Issues,
): LlmConfig {
  const providers: ProviderSpec[] = []
  for (const [name, p] of l.providers) {
    const at = ['llm', 'providers', name]
    if (upstreamNames !== undefined && !upstreamNames.has(p.upstream))
      issues.add([...at, 'upstream'], `no upstream named "${p.upstream}"`)
    // A self-hosted OpenAI-compatible server may take no key; the hosted providers always need one.
    if (p.credential === undefined && p.kind !== 'openai-compatible')
      issues.add([...at, 'credential'], `is required with kind: ${p.kind}`)
    if (p.anthropicVersion !== undefined && p.kind !== 'anthropic')
      issues.add([...at, 'anthropicVersion'], 'applies to kind: anthropic only')
    if (p.models.length === 0) issues.add([...at, 'models'], 'needs at least one model glob')
    providers.push({
      name,
      kind: p.kind,
      upstream: p.upstream,
      models: p.models,
      ...(p.credential === undefined ? {} : { credential: p.credential }),
      ...(p.anthropicVersion === undefined ? {} : { anthropicVersion: p.anthropicVersion }),
    })
  }
  return { bodyLimit: l.bodyLimit, maxDepth: l.maxDepth, unknownPaths: l.unknownPaths, providers }
}

function checkBudgets(b: NonNullable<Parsed['budgets']>, issues: Issues): void {
  const names = new Set<string>()
  b.limits.forEach((l, i) => {
    if (names.has(l.name)) issues.add(['budgets', 'limits', i, 'name'], `"${l.name}" is used twice`)
    names.add(l.name)
    if (l.subjects.length === 0)
      issues.add(['budgets', 'limits', i, 'subjects'], 'needs at least one SPIFFE ID pattern')
    l.subjects.forEach((p, j) => {
      try {
        matchPattern(p)
      } catch (err) {
        issues.add(['budgets', 'limits', i, 'subjects', j], (err as Error).message)
      }
    })
    if (l.tokensPerMinute === undefined && l.tokensPerDay === undefined && l.requestsPerMinute === undefined)
      issues.add(['budgets', 'limits', i], 'needs tokensPerMinute, tokensPerDay or requestsPerMinute')
    if (l.perModel && l.models === undefined)
      issues.add(['budgets', 'limits', i, 'perModel'], 'applies with models only')
  })
}

function budgetsConfig(b: NonNullable<Parsed['budgets']>): BudgetsConfig {
  return {
    defaultMaxTokens: b.defaultMaxTokens,
    extendTokens: b.extendTokens,
    limits: b.limits.map((l) => ({
      name: l.name,
      subjects: l.subjects,
      perModel: l.perModel,
      ...(l.models === undefined ? {} : { models: l.models }),
      ...(l.tokensPerMinute === undefined ? {} : { tokensPerMinute: l.tokensPerMinute }),
      ...(l.tokensPerDay === undefined ? {} : { tokensPerDay: l.tokensPerDay }),
      ...(l.requestsPerMinute === undefined ? {} : { requestsPerMinute: l.requestsPerMinute }),
    })),
    ...(b.redis === undefined
      ? {}
      : {
          redis: {
            url: b.redis.url,
            keyPrefix: b.redis.keyPrefix,
            timeoutMs: b.redis.timeout,
            onUnavailable: b.redis.onUnavailable,
          },
        }),
  }
}

type Parsed = NonNullable<ReturnType<typeof SCHEMA>>

/** What passed the schema, part by part; a part that failed is undefined (its problems are already reported). */
interface View {
  workloadApi: Parsed['workloadApi'] | undefined
  admin: Parsed['admin'] | undefined
  tls: Parsed['tls'] | undefined
  limits: Parsed['limits'] | undefined
  audit: Parsed['audit'] | undefined
  inbound: Array<Parsed['inbound'][number] | undefined>
  outbound: Array<Parsed['outbound'][number] | undefined>
  upstreams: Map<string, ReturnType<Parsed['upstreams']['get']>>
}

/** Each section, listener and upstream checked on its own, when the document as a whole failed. */
function salvage(doc: Record<string, unknown>): View {
  const quiet: Issues = { add() {} }
  // A section left out gets its default, as in a whole document.
  const part = (key: string, value: unknown) => SCHEMA(value === undefined ? {} : { [key]: value }, [], quiet)
  const items = (key: string): unknown[] => (Array.isArray(doc[key]) ? (doc[key] as unknown[]) : [])
  return {
    workloadApi: part('workloadApi', doc.workloadApi)?.workloadApi,
    admin: part('admin', doc.admin)?.admin,
    tls: part('tls', doc.tls)?.tls,
    limits: part('limits', doc.limits)?.limits,
    audit: part('audit', doc.audit)?.audit,
    inbound: items('inbound').map((l) => part('inbound', [l])?.inbound[0]),
    outbound: items('outbound').map((l) => part('outbound', [l])?.outbound[0]),
    upstreams: new Map(
      Object.entries(isMapping(doc.upstreams) ? doc.upstreams : {}).map(([name, u]) => [
        name,
        part('upstreams', { [name]: u })?.upstreams.get(name),
      ]),
    ),
  }
}

/** The parts that parsed, with their index in the file. */
function present<T>(items: Array<T | undefined>): Array<[T, number]> {
  const out: Array<[T, number]> = []
  items.forEach((item, i) => {
    if (item !== undefined) out.push([item, i])
  })
  return out
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

interface EnvOverride {
  path: Path
  variable: string
}

/**
 * Overrides from the environment, applied to the raw document so the schema
 * checks them like any value; `overrides` records which field each set, so a
 * problem with it names the variable instead of a line of the file.
 */
function applyEnv(raw: unknown, env: NodeJS.ProcessEnv, issues: Issues, overrides: EnvOverride[]): void {
  if (!isMapping(raw)) return
  const doc = raw
  const socket = env[ENV.workloadApiSocket]
  if (socket) {
    doc.workloadApi = { ...(isMapping(doc.workloadApi) ? doc.workloadApi : {}), socket }
    overrides.push({ path: ['workloadApi', 'socket'], variable: ENV.workloadApiSocket })
  }
  const admin = env[ENV.adminAddress]
  if (admin) {
    doc.admin = { ...(isMapping(doc.admin) ? doc.admin : {}), address: admin }
    overrides.push({ path: ['admin', 'address'], variable: ENV.adminAddress })
  }
  for (const kind of ['inbound', 'outbound'] as const) {
    const listeners = doc[kind]
    if (!Array.isArray(listeners)) continue
    listeners.forEach((l: unknown, i) => {
      if (!isMapping(l) || typeof l.name !== 'string') return
      const key = `${ENV.listenerAddressPrefix}${l.name.toUpperCase().replaceAll('-', '_')}_ADDRESS`
      const value = env[key]
      if (!value) return
      l.address = value
      overrides.push({ path: [kind, i, 'address'], variable: key })
    })
  }
  for (const key of Object.keys(env)) {
    if (!key.startsWith(ENV.listenerAddressPrefix) || !key.endsWith('_ADDRESS')) continue
    const name = key
      .slice(ENV.listenerAddressPrefix.length, -'_ADDRESS'.length)
      .toLowerCase()
      .replaceAll('_', '-')
    const exists = ['inbound', 'outbound'].some(
      (k) => Array.isArray(doc[k]) && (doc[k] as { name?: unknown }[]).some((l) => l?.name === name),
    )
    if (!exists) issues.add([], `environment variable ${key} names no listener "${name}"`)
  }
}

function findKeyNode(doc: Document, path: Path): { range?: [number, number, number] } | undefined {
  const parent = doc.getIn(path.slice(0, -1), true) as
    | { items?: { key?: { value?: unknown; range?: [number, number, number] } }[] }
    | undefined
  const last = path[path.length - 1]
  if (typeof last !== 'string' || !parent?.items) return undefined
  return parent.items.find((p) => p.key?.value === last)?.key
}

function policyConfig(p: NonNullable<Parsed['policy']>): PolicyConfig {
  return {
    engine: p.engine,
    ...(p.file === undefined ? {} : { file: p.file }),
    ...(p.schema === undefined ? {} : { schema: p.schema }),
    ...(p.mode === undefined ? {} : { mode: p.mode }),
    ...(p.headers === undefined || p.headers.length === 0 ? {} : { headers: [...new Set(p.headers)] }),
    ...(p.opa === undefined
      ? {}
      : {
          opa: {
            url: p.opa.url,
            package: p.opa.package,
            timeoutMs: p.opa.timeout,
            cacheEntries: p.opa.cacheEntries,
            cacheTtlMs: p.opa.cacheTtl,
          },
        }),
  }
}
