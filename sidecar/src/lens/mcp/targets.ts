/**
 * What each MCP message asks for, as policy sees it: a tool, resource or
 * prompt to decide (with the attributes CEL conditions read), a list whose
 * result is filtered, protocol housekeeping any authenticated peer may
 * send, or a method the sidecar does not know (denied).
 */
import type { PolicyResource } from '../../policy/engine.ts'
import type { McpMessage } from './jsonrpc.ts'

export type ListMethod = 'tools/list' | 'resources/list' | 'resources/templates/list' | 'prompts/list'

export const LIST_METHODS: ReadonlySet<string> = new Set<ListMethod>([
  'tools/list',
  'resources/list',
  'resources/templates/list',
  'prompts/list',
])

/** Any authenticated peer may send these; they reveal nothing a list filter hides. */
const HOUSEKEEPING: ReadonlySet<string> = new Set([
  'initialize',
  'ping',
  'server/discover',
  'logging/setLevel',
  // Ending a subscription grants nothing.
  'resources/unsubscribe',
])

/** What policy reads about one message, under `attributes.mcp`. */
export interface McpAttributes {
  readonly method: string
  readonly name?: string
  readonly uri?: string
  /** `tools/call` and `prompts/get` arguments; `completion/complete`'s argument. */
  readonly arguments?: unknown
}

export const MCP_ATTRIBUTE = 'mcp'

export type Target =
  | { readonly kind: 'pass' }
  | { readonly kind: 'list'; readonly method: ListMethod }
  | { readonly kind: 'decide'; readonly resource: PolicyResource; readonly attributes: McpAttributes }
  /** Every one must be allowed (a stateless-era `subscriptions/listen` naming several resources). */
  | {
      readonly kind: 'decideAll'
      readonly items: ReadonlyArray<{ readonly resource: PolicyResource; readonly attributes: McpAttributes }>
    }
  | { readonly kind: 'unknown'; readonly method: string }
  /** A request about one task: only the SPIFFE ID that created the task may make it. */
  | { readonly kind: 'task'; readonly taskId: string }
  /** `tasks/list`: its answer is filtered to the caller's own tasks. */
  | { readonly kind: 'taskList' }
  /** The params do not name the target the method needs. */
  | { readonly kind: 'invalid'; readonly message: string }

export function targetOf(message: McpMessage): Target {
  if (message.kind === 'response') return { kind: 'pass' }
  const { method, params } = message
  // A message with an id is a request, whatever its method says: no request is named notifications/*.
  if (method.startsWith('notifications/'))
    return message.kind === 'notification' ? { kind: 'pass' } : { kind: 'unknown', method }
  if (HOUSEKEEPING.has(method)) return { kind: 'pass' }
  if (message.kind === 'notification') return { kind: 'unknown', method }
  if (LIST_METHODS.has(method)) return { kind: 'list', method: method as ListMethod }
  const str = (key: string): string | undefined => {
    const v = params?.[key]
    return typeof v === 'string' ? v : undefined
  }
  switch (method) {
    case 'tools/call': {
      const name = str('name')
      if (name === undefined) return { kind: 'invalid', message: 'tools/call needs a string params.name' }
      return {
        kind: 'decide',
        resource: { kind: 'mcp.tool', name },
        attributes: { method, name, arguments: params?.arguments ?? {} },
      }
    }
    case 'prompts/get': {
      const name = str('name')
      if (name === undefined) return { kind: 'invalid', message: 'prompts/get needs a string params.name' }
      return {
        kind: 'decide',
        resource: { kind: 'mcp.prompt', name },
        attributes: { method, name, arguments: params?.arguments ?? {} },
      }
    }
    case 'resources/read':
    case 'resources/subscribe': {
      const uri = str('uri')
      if (uri === undefined) return { kind: 'invalid', message: `${method} needs a string params.uri` }
      return { kind: 'decide', resource: { kind: 'mcp.resource', uri }, attributes: { method, uri } }
    }
    case 'tasks/get':
    case 'tasks/result':
    case 'tasks/cancel':
    case 'tasks/update': {
      const taskId = str('taskId')
      if (taskId === undefined) return { kind: 'invalid', message: `${method} needs a string params.taskId` }
      return { kind: 'task', taskId }
    }
    case 'tasks/list':
      return { kind: 'taskList' }
    case 'subscriptions/listen': {
      // 2026-07-28: one stream for the change notifications the client opts in to. The list-changed kinds reveal
      // nothing a list filter hides; each resource it subscribes to is decided as reading it would be.
      const filter = params?.notifications
      if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
        return { kind: 'invalid', message: 'subscriptions/listen needs an object params.notifications' }
      }
      const uris = (filter as Record<string, unknown>).resourceSubscriptions
      if (uris === undefined) return { kind: 'pass' }
      if (!Array.isArray(uris) || !uris.every((u) => typeof u === 'string')) {
        return {
          kind: 'invalid',
          message:
            'subscriptions/listen needs params.notifications.resourceSubscriptions to be a list of URIs',
        }
      }
      if (uris.length === 0) return { kind: 'pass' }
      return {
        kind: 'decideAll',
        items: (uris as string[]).map((uri) => ({
          resource: { kind: 'mcp.resource', uri },
          attributes: { method, uri },
        })),
      }
    }
    case 'completion/complete': {
      // Completions leak the values a prompt or resource template would accept: decided as their target.
      const ref = params?.ref as Record<string, unknown> | undefined
      const argument = params?.argument
      if (ref?.type === 'ref/prompt' && typeof ref.name === 'string') {
        return {
          kind: 'decide',
          resource: { kind: 'mcp.prompt', name: ref.name },
          attributes: { method, name: ref.name, arguments: argument ?? {} },
        }
      }
      if (ref?.type === 'ref/resource' && typeof ref.uri === 'string') {
        return {
          kind: 'decide',
          resource: { kind: 'mcp.resource', uri: ref.uri },
          attributes: { method, uri: ref.uri, arguments: argument ?? {} },
        }
      }
      return {
        kind: 'invalid',
        message: 'completion/complete needs params.ref naming a prompt or a resource',
      }
    }
    default:
      return { kind: 'unknown', method }
  }
}
