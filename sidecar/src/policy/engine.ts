/**
 * The one decision interface every policy engine implements (built-in,
 * Cedar, OPA): from a request to allow or deny, with the rule that decided
 * and why. In-process engines are pure functions; an engine that asks a
 * remote service answers through the same shape, as a promise.
 */
import type { SpiffeId } from 'workload-api-client'

/** The kinds of resource a rule can name; the action of a request is its resource's kind. */
/**
 * `mcp.client` is a request an MCP server makes of the agent (sampling, elicitation, roots), named by the client
 * capability it uses; the agent's own sidecar decides it with the agent as the subject.
 */
export const RESOURCE_KINDS = [
  'http.route',
  'llm.model',
  'mcp.tool',
  'mcp.resource',
  'mcp.prompt',
  'mcp.client',
] as const
export type ResourceKind = (typeof RESOURCE_KINDS)[number]

export type PolicyResource =
  | { readonly kind: 'http.route'; readonly method: string; readonly path: string }
  | { readonly kind: 'llm.model'; readonly name: string }
  | { readonly kind: 'mcp.tool'; readonly name: string }
  | { readonly kind: 'mcp.resource'; readonly uri: string }
  | { readonly kind: 'mcp.prompt'; readonly name: string }
  | { readonly kind: 'mcp.client'; readonly name: string }

export interface PolicyContext {
  /** The time of the request; conditions see it as a CEL timestamp. */
  readonly time: Date
  readonly direction?: 'inbound' | 'outbound'
  /** The HTTP method and path of the request that carries the action (for http.route, the same as the resource). */
  readonly method?: string
  readonly path?: string
  /** Only the headers the pipeline chose to expose, lower-case names; never credentials. */
  readonly headers?: Readonly<Record<string, string>>
  /** What lenses learned about the request (model, max tokens, MCP method, ...). */
  readonly attributes?: Readonly<Record<string, unknown>>
}

export interface PolicyRequest {
  /** Who acts: inbound, the verified peer; outbound, this workload. */
  readonly subject: SpiffeId
  /** The other end when it is known and not the subject (outbound: the upstream's verified ID). */
  readonly peer?: SpiffeId
  readonly resource: PolicyResource
  readonly context: PolicyContext
}

export type DecisionMode = 'enforce' | 'audit'

/**
 * How a lens answers a denied MCP tool, resource or prompt: `hide` (left out of lists, a call answers as for
 * an unknown one), `explain` (a tool error result naming the rule), `forbid` (HTTP 403 `insufficient_scope`).
 */
export const DENY_STYLES = ['hide', 'explain', 'forbid'] as const
export type DenyStyle = (typeof DENY_STYLES)[number]

export interface PolicyDecision {
  /** What the caller must do. In audit mode a denial is reported here as allow. */
  readonly decision: 'allow' | 'deny'
  /** The rule that decided (or, in audit mode, would have denied); absent for the default deny. */
  readonly ruleId?: string
  readonly reason: string
  /** `audit`: the request was let through although the policy denies it (`wouldDeny`). */
  readonly mode: DecisionMode
  readonly engine: string
  /** Set when the policy denies but the denial was not enforced (audit mode). */
  readonly wouldDeny?: true
  /**
   * Set when the engine could not decide (it threw, its decision service could not be asked or answered
   * nothing usable, it refused to evaluate the request): a fail-closed denial, not the policy's answer.
   */
  readonly failed?: true
  /** Set when a condition failed to evaluate; such a failure never allows. */
  readonly conditionError?: { readonly ruleId: string; readonly message: string }
  /** A denial's style for MCP answers, when the policy names one (the lens's default otherwise). */
  readonly denyStyle?: DenyStyle
}

/**
 * In-process engines (built-in, Cedar) answer synchronously; an engine that asks a decision service (OPA)
 * answers with a promise, and the policy stage awaits only when it gets one.
 */
export interface PolicyEngine {
  readonly name: string
  /**
   * The request headers (lower-case names) the policy may read; authorize()
   * puts those the request has in `context.headers`. None when absent.
   */
  readonly headers?: readonly string[]
  decide(request: PolicyRequest): PolicyDecision | Promise<PolicyDecision>
  /**
   * When every decision on resources of `kind` depends on nothing but the subject, the resource and the policy
   * in force (no rule of that kind has a condition), a token naming that policy (a reload gives a new one), so a
   * caller deciding the same items again may keep their decisions under it. Undefined when a decision may read
   * the request's context, or the engine cannot tell.
   */
  contextFree?(kind: PolicyResource['kind']): object | undefined
}

const MAX_DESCRIBED = 200

/** At most MAX_DESCRIBED characters, so a reason stays one readable line whatever a client sent. */
function clip(s: string): string {
  return s.length <= MAX_DESCRIBED ? s : `${s.slice(0, MAX_DESCRIBED)}…`
}

/**
 * A one-line description of a resource, for reasons and explanations (and so
 * for audit lines): a path loses its query and fragment, which can carry
 * tokens, and long names are clipped.
 */
export function describeResource(resource: PolicyResource): string {
  switch (resource.kind) {
    case 'http.route': {
      const cut = resource.path.search(/[?#]/)
      return `http.route ${clip(resource.method)} ${clip(cut === -1 ? resource.path : resource.path.slice(0, cut))}`
    }
    case 'mcp.resource':
      return `mcp.resource ${clip(resource.uri)}`
    default:
      return `${String(resource.kind)} ${clip(String(resource.name))}`
  }
}
