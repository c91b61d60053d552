/**
 * The MCP lens on the listener's MCP paths (Streamable HTTP, both eras).
 * A POST body is read under the cap and checked as JSON-RPC; in the
 * stateless era the mirrored headers must equal it; every message is
 * decided on its own (a tool by name, a resource by URI, a prompt by name,
 * a completion by its target; housekeeping passes), and one denial refuses
 * the whole body, answered in the denial's style. The session era's
 * `Mcp-Session-Id` is bound to the SPIFFE ID that created it. List results
 * in the response are filtered to what the subject may know about. On the
 * agent's side, the server's own requests of the agent (sampling,
 * elicitation, roots) are decided for the agent as `mcp.client`, and
 * sampling is counted against its budget (lens/mcp/client-requests.ts,
 * sampling.ts). The lens makes every decision the request needs, so the
 * policy stage adds none (`exchange.decided`).
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { SpiffeId } from 'workload-api-client'
import { SvidecarError } from '../errors/index.ts'
import {
  answerServer,
  type ClientRequest,
  clientRequestOf,
  mayHoldClientRequest,
  refusalOf,
} from '../lens/mcp/client-requests.ts'
import { answerReply, type Denial, denialAnswer, forbidReply, problemReply } from '../lens/mcp/denials.ts'
import type { KeepItem, ListedItem } from '../lens/mcp/filter.ts'
import {
  type Admission,
  inputRequiredOf,
  inputResponsesOf,
  MRTR_METHODS,
  type MrtrMethod,
  screenInputRequests,
} from '../lens/mcp/input-requests.ts'
import {
  errorResponse,
  HEADER_MISMATCH,
  INVALID_PARAMS,
  INVALID_REQUEST,
  isProblem,
  type JsonRpcProblem,
  type McpMessage,
  METHOD_NOT_FOUND,
  POLICY_DENIED,
  parseBody,
} from '../lens/mcp/jsonrpc.ts'
import { ParamHeaderTable, paramHeaderMismatch } from '../lens/mcp/param-headers.ts'
import { ToolPins } from '../lens/mcp/pins.ts'
import {
  idKey,
  listFilterWrapper,
  listingOf,
  listShapeOf,
  type PendingAnswer,
  type PendingLists,
  type StreamHooks,
  sseStreamWrapper,
} from '../lens/mcp/response.ts'
import { type SamplingBudget, SamplingMeter } from '../lens/mcp/sampling.ts'
import { SessionTable } from '../lens/mcp/sessions.ts'
import { type ListMethod, MCP_ATTRIBUTE, targetOf } from '../lens/mcp/targets.ts'
import {
  allowsBatch,
  checkMirroredHeaders,
  checkSentMirroredHeaders,
  type Era,
  MODERN_VERSIONS,
  metaVersion,
  requestVersion,
  validSessionId,
} from '../lens/mcp/transports.ts'
import { publishPolicyDecision } from '../observe/events.ts'
import { type AuthorizeOptions, authorize, authorizer } from '../pipeline/authorize.ts'
import type { Exchange } from '../pipeline/exchange.ts'
import { auditTag, ListAuditWindow } from '../pipeline/list-audit.ts'
import { underPrefix } from '../pipeline/path-prefix.ts'
import { ScopedTable } from '../pipeline/scoped-table.ts'
import type { FrameFilter, ResponseHead, ResponseWrapper, Stage, StageResult } from '../pipeline/stage.ts'
import type { DenyStyle, PolicyDecision, PolicyEngine, PolicyResource } from '../policy/engine.ts'

export interface McpStageOptions {
  /** Path prefixes (matched at segment boundaries) that speak MCP. */
  paths: readonly string[]
  /** The largest JSON-RPC body read, and the largest list result or SSE event filtered. */
  maxMessageBytes: number
  maxSessions: number
  sessionIdleTimeoutMs: number
  /** Decides every message; without one every message is allowed (the lens still checks and binds). */
  policy?: PolicyEngine
  /** The style of denials whose decision names none. */
  defaultDenyStyle?: DenyStyle
  /** Pin each listed tool's name, description and input schema; a changed tool is hidden and refused. */
  pinTools?: boolean
  /** On the agent's side: sampling requests count against the agent's token budget. */
  sampling?: SamplingBudget
}

const MAX_PINS = 100_000
const MAX_KNOWN_ITEMS = 100_000
/** Without a policy engine every message is allowed (the lens still checks, binds and pins). */
const NO_POLICY: PolicyDecision = { decision: 'allow', reason: 'no policy', mode: 'enforce', engine: 'none' }
/** The rule id audit lines name for a tool refused because it changed since it was pinned. */
export const TOOL_PIN_RULE = 'svidecar:tool-pin'

/** What the request side learned, for the response side. */
interface McpState {
  readonly era: Era
  readonly sessionId: string | undefined
  /** The body held an `initialize` request: its response's session id is bound to the subject. */
  initialize: boolean
  pending: PendingLists
  /** A GET that may open an HTTP+SSE stream. */
  openStream?: boolean
  /** A stateless-era `subscriptions/listen`: its stream's resource updates are filtered. */
  listen?: boolean
  /** A session-era GET resuming a stream: every list-shaped answer it replays is filtered. */
  resume?: boolean
}

/** An open HTTP+SSE stream: the list requests POSTed on its session, and a way to answer on it. */
interface OpenStream {
  readonly pending: Map<string, PendingAnswer>
  push: ((chunk: Buffer) => void) | undefined
}

export function mcpStage(options: McpStageOptions): Stage {
  const paths = options.paths.map((p) => (p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p))
  const sessions = new SessionTable({
    maxSessions: options.maxSessions,
    idleTimeoutMs: options.sessionIdleTimeoutMs,
  })
  // HTTP+SSE sessions, and their open streams (where their answers arrive).
  const sseSessions = new SessionTable({
    maxSessions: options.maxSessions,
    idleTimeoutMs: options.sessionIdleTimeoutMs,
  })
  const streams = new Map<string, OpenStream>()
  // Task ids, bound to the SPIFFE ID that created each task (kept as long as it is in use).
  const tasks = new SessionTable({
    maxSessions: options.maxSessions,
    idleTimeoutMs: options.sessionIdleTimeoutMs,
  })
  const engine = options.policy
  const pins = options.pinTools === true ? new ToolPins(MAX_PINS) : undefined
  const listAudits = new ListAuditWindow()
  // List items' decisions under a policy that decides their kind without context, per policy in force.
  const knownItems = new WeakMap<object, ScopedTable<KnownItem>>()
  // The arguments each listed tool mirrors in Mcp-Param-* headers (stateless era), per upstream.
  const paramTable = new ParamHeaderTable(MAX_PINS)
  const meter = options.sampling === undefined ? undefined : new SamplingMeter(options.sampling)
  /** Names a server's request to the agent, so the agent's answer finds what was reserved for it. */
  const samplingKey = (exchange: Exchange, session: string | undefined, id: string | number) =>
    `${exchange.subject?.toString() ?? ''}|${session ?? ''}|${idKey(id)}`
  /** The same for an MRTR input request: its retry echoes the server's opaque state and the request's key. */
  const inputKey = (exchange: Exchange, state: string | undefined, key: string) =>
    `${exchange.subject?.toString() ?? ''}|mrtr|${JSON.stringify([state ?? null, key])}`
  const upstreamOf = (exchange: Exchange) => exchange.route ?? exchange.listener
  const defaultStyle = options.defaultDenyStyle ?? 'hide'
  const states = new WeakMap<Exchange, McpState>()
  const isMcp = (exchange: Exchange) => paths.some((p) => underPrefix(exchange.path, p))
  const styleOf = (d: PolicyDecision): DenyStyle => d.denyStyle ?? defaultStyle

  /** Refuses a session id that is malformed, bound to another SPIFFE ID, or not bound at all. */
  function sessionRefusal(table: SessionTable, sid: string, exchange: Exchange): SvidecarError | undefined {
    if (!validSessionId(sid)) {
      return refuse(
        exchange,
        400,
        { code: INVALID_REQUEST, message: 'the MCP session id is not visible ASCII', id: null },
        new SvidecarError('SVD_MCP_INVALID', 'the MCP session id is malformed', { reason: 'SESSION_ID' }),
      )
    }
    const check = table.check(sid, exchange.subject?.toString() ?? '')
    if (check === 'foreign') {
      return refuse(
        exchange,
        403,
        { code: INVALID_REQUEST, message: 'this MCP session belongs to another workload', id: null },
        new SvidecarError('SVD_MCP_SESSION_FOREIGN', 'the MCP session was created by another SPIFFE ID', {
          reason: 'SESSION_FOREIGN',
        }),
      )
    }
    if (check === 'unknown') {
      return refuse(
        exchange,
        404,
        { code: INVALID_REQUEST, message: 'unknown or expired MCP session: send initialize again', id: null },
        new SvidecarError('SVD_MCP_SESSION_UNKNOWN', 'the sidecar holds no binding for this MCP session', {
          reason: 'SESSION_UNKNOWN',
        }),
      )
    }
    return undefined
  }

  function refuse(
    exchange: Exchange,
    status: number,
    problem: JsonRpcProblem,
    err: SvidecarError,
  ): SvidecarError {
    exchange.reply = problemReply(status, problem, err.code)
    return err
  }

  function onPost(
    exchange: Exchange,
    era: Era,
    version: string,
    sessionId: string | undefined,
    sseSession: string | undefined,
  ): StageResult | Promise<StageResult> {
    const parsed = parseBody(exchange.body ?? Buffer.alloc(0), era === 'legacy' && allowsBatch(version))
    if (isProblem(parsed)) {
      return refuse(
        exchange,
        400,
        parsed,
        new SvidecarError('SVD_MCP_INVALID', parsed.message, { reason: 'JSONRPC' }),
      )
    }
    for (const m of parsed.messages) {
      const problem =
        era === 'modern'
          ? modernProblem(exchange, version, m)
          : (modernWithoutHeader(m, exchange.req.headers) ??
            checkSentMirroredHeaders(exchange.req.headers, m))
      if (problem !== undefined) {
        const mismatch = problem.code === HEADER_MISMATCH
        return refuse(
          exchange,
          400,
          problem,
          mismatch
            ? new SvidecarError('SVD_MCP_HEADER_MISMATCH', problem.message, { reason: 'HEADER_MISMATCH' })
            : new SvidecarError('SVD_MCP_INVALID', problem.message, { reason: 'JSONRPC' }),
        )
      }
    }
    const state: McpState = { era, sessionId, initialize: false, pending: new Map() }
    const pending = new Map<string, PendingAnswer>()
    // Agent's side, stateless era: an answer may ask the agent for input (MRTR), which its policy screens.
    const screensInput =
      era === 'modern' && exchange.direction === 'outbound' && (engine !== undefined || meter !== undefined)
    const denials: Denial[] = []
    const refusals: Refusal[] = []
    const decisions: Array<{ message: McpMessage; resource: PolicyResource; attributes: object }> = []
    for (const m of parsed.messages) {
      const target = targetOf(m)
      if (m.kind === 'request' && m.method === 'initialize') state.initialize = true
      switch (target.kind) {
        case 'pass':
          break
        case 'list':
          if (m.kind === 'request') pending.set(idKey(m.id), { id: m.id, method: target.method })
          break
        case 'decide':
          decisions.push({ message: m, resource: target.resource, attributes: target.attributes })
          if (m.kind === 'request' && isObject(m.params?.task)) {
            // A task-augmented request: the task it creates is bound to the caller.
            pending.set(idKey(m.id), { id: m.id, method: m.method, task: true })
          } else if (screensInput && m.kind === 'request' && MRTR_METHODS.has(m.method)) {
            pending.set(idKey(m.id), { id: m.id, method: m.method as MrtrMethod })
          }
          break
        case 'task': {
          const check = tasks.check(target.taskId, exchange.subject?.toString() ?? '')
          if (check !== 'ok' && m.kind === 'request') {
            // An unknown task and another workload's task get the same answer: the caller learns nothing of it.
            refusals.push({
              message: m,
              problem: {
                code: INVALID_PARAMS,
                message: `Task not found: ${target.taskId.slice(0, 100)}`,
                id: m.id,
              },
              reason: check === 'foreign' ? 'TASK_FOREIGN' : 'TASK_UNKNOWN',
            })
          }
          break
        }
        case 'taskList':
          if (m.kind === 'request') pending.set(idKey(m.id), { id: m.id, method: m.method })
          break
        case 'decideAll':
          for (const item of target.items) {
            decisions.push({ message: m, resource: item.resource, attributes: item.attributes })
          }
          if (m.kind === 'request' && m.method === 'subscriptions/listen') state.listen = true
          break
        case 'invalid':
          refusals.push({
            message: m,
            problem: {
              code: INVALID_PARAMS,
              message: target.message,
              id: m.kind === 'request' ? m.id : null,
            },
          })
          break
        case 'unknown':
          refusals.push({
            message: m,
            problem: {
              code: m.kind === 'request' ? METHOD_NOT_FOUND : INVALID_REQUEST,
              message: `method ${target.method.slice(0, 100)} is not one the sidecar lets through`,
              id: m.kind === 'request' ? m.id : null,
            },
          })
          break
      }
    }
    const finish = (): StageResult => {
      exchange.decided = true
      const stream = sseSession === undefined ? undefined : streams.get(sseSession)
      if (denials.length === 0 && refusals.length === 0) {
        if (meter !== undefined && exchange.direction === 'outbound' && exchange.subject !== undefined) {
          const ctx = samplingContext(exchange, exchange.subject)
          for (const m of parsed.messages) {
            if (m.kind === 'response' && m.id !== null) {
              meter.answered(samplingKey(exchange, sessionId ?? sseSession, m.id), m.result, ctx)
            } else if (m.kind === 'request' && era === 'modern') {
              // An MRTR retry: each sampling answer settles what was reserved when the server asked.
              const answers = inputResponsesOf(m.params)
              for (const [key, result] of answers?.responses ?? []) {
                meter.answered(inputKey(exchange, answers?.state, key), result, ctx)
              }
            }
          }
        }
        if (stream !== undefined) {
          // HTTP+SSE: the answers come on the session's stream, which filters them.
          for (const [key, p] of pending) stream.pending.set(key, p)
          return undefined
        }
        state.pending = pending
        states.set(exchange, state)
        // A list answer is read to be filtered: it must not come compressed.
        if (reads(pending)) {
          exchange.headers.set['accept-encoding'] = 'identity'
        }
        return undefined
      }
      const err = answerRefused(exchange, era, parsed.batch, parsed.messages, denials, refusals)
      const reply = exchange.reply
      if (stream?.push !== undefined && reply !== undefined && reply.status === 200) {
        // HTTP+SSE answers on the stream, as the server would: the POST itself is only accepted.
        stream.push(Buffer.from(`event: message\ndata: ${reply.body}\n\n`))
        exchange.reply = { status: 202, headers: {}, body: '' }
      }
      return err
    }
    // Each message is decided with its own attributes; a decision service is awaited before the next.
    const decideFrom = (i: number): StageResult | Promise<StageResult> => {
      for (; i < decisions.length; i++) {
        const d = decisions[i] as (typeof decisions)[number]
        if (engine === undefined) {
          record(d.message, d.resource, NO_POLICY)
          continue
        }
        exchange.attributes[MCP_ATTRIBUTE] = d.attributes
        const answer = authorize(engine, exchange, d.resource)
        if (answer instanceof Promise) {
          const next = i + 1
          return answer.then((decision) => {
            record(d.message, d.resource, decision)
            return decideFrom(next)
          })
        }
        record(d.message, d.resource, answer)
      }
      return finish()
    }
    // Only requests name a tool, resource or prompt (targets.ts).
    const record = (m: McpMessage, resource: PolicyResource, decision: PolicyDecision) => {
      if (m.kind !== 'request') return
      if (decision.decision === 'allow') {
        if (
          resource.kind !== 'mcp.tool' ||
          m.method !== 'tools/call' ||
          !pins?.changed(upstreamOf(exchange), resource.name)
        )
          return
        // Allowed by policy, but the tool is not the one that was approved: refused as unknown.
        const pinned = pinDenial(
          exchange,
          resource.name,
          'its calls are refused until the change is approved',
        )
        denials.push({ id: m.id, method: m.method, resource, decision: pinned, style: 'hide' })
        return
      }
      denials.push({ id: m.id, method: m.method, resource, decision, style: styleOf(decision) })
    }
    return decideFrom(0)
  }

  function answerRefused(
    exchange: Exchange,
    era: Era,
    batch: boolean,
    messages: readonly McpMessage[],
    denials: readonly Denial[],
    refusals: readonly Refusal[],
  ): SvidecarError {
    const forbid = denials.find((d) => d.style === 'forbid')
    if (forbid !== undefined) {
      const err = new SvidecarError('SVD_MCP_DENIED', `the policy does not allow ${forbid.resource.kind}`, {
        reason: 'FORBID',
      })
      exchange.reply = forbidReply(forbid, batch, err.code)
      return err
    }
    if (denials.length === 0) {
      const first = refusals[0] as Refusal
      const unknown = first.problem.code === METHOD_NOT_FOUND || first.message.kind === 'notification'
      const err = new SvidecarError(
        unknown || first.reason !== undefined ? 'SVD_MCP_DENIED' : 'SVD_MCP_INVALID',
        first.problem.message,
        { reason: first.reason ?? (unknown ? 'METHOD_UNKNOWN' : 'PARAMS') },
      )
      if (!batch) {
        // A lone notification cannot be answered in JSON-RPC: the HTTP error says it.
        if (first.message.kind !== 'request') return refuse(exchange, 400, first.problem, err)
        // 2026-07-28 Streamable HTTP: a method the server does not implement is 404 with -32601.
        if (era === 'modern' && first.problem.code === METHOD_NOT_FOUND)
          return refuse(exchange, 404, first.problem, err)
        exchange.reply = answerReply(
          errorResponse(first.problem.id, first.problem.code, first.problem.message),
          err.code,
        )
        return err
      }
      exchange.reply = answerReply(batchAnswers(messages, new Map(), refusals), err.code)
      return err
    }
    const explain = denials.some((d) => d.style === 'explain')
    const err = new SvidecarError('SVD_MCP_DENIED', 'the policy denies a message of this request', {
      reason: explain ? 'EXPLAIN' : 'HIDE',
    })
    const byId = new Map(denials.map((d) => [idKey(d.id), denialAnswer(d, era)]))
    // Hidden denials leave no sign the sidecar answered; an explained one says so.
    const code = explain ? err.code : undefined
    if (!batch) {
      exchange.reply = answerReply(byId.values().next().value as object, code)
      return err
    }
    exchange.reply = answerReply(batchAnswers(messages, byId, refusals), code)
    return err
  }

  /** One answer per request of a refused batch: its own refusal, or "not forwarded" for the allowed ones. */
  function batchAnswers(
    messages: readonly McpMessage[],
    denied: ReadonlyMap<string, object>,
    refusals: ReadonlyArray<{ message: McpMessage; problem: JsonRpcProblem }>,
  ): object[] {
    const refused = new Map<McpMessage, JsonRpcProblem>(refusals.map((r) => [r.message, r.problem]))
    const out: object[] = []
    for (const m of messages) {
      if (m.kind !== 'request') continue
      const own = denied.get(idKey(m.id))
      if (own !== undefined) {
        out.push(own)
        continue
      }
      const problem = refused.get(m)
      out.push(
        problem !== undefined
          ? errorResponse(m.id, problem.code, problem.message)
          : errorResponse(m.id, POLICY_DENIED, 'not forwarded: another message of this batch was refused'),
      )
    }
    return out
  }

  return {
    name: 'mcp',
    bodyLimit: (exchange) =>
      exchange.method === 'POST' && isMcp(exchange) ? options.maxMessageBytes : undefined,
    onRequest(exchange) {
      if (!isMcp(exchange)) return undefined
      // Streamable HTTP "Security Warning": a browser page from another site (DNS rebinding, or a WebSocket, which
      // browsers open anywhere) must not act with this workload's identity. Agents send no Origin.
      const origin = exchange.req.headers.origin
      if (origin !== undefined && !isLoopbackOrigin(origin)) {
        exchange.decided = true
        const err = new SvidecarError(
          'SVD_MCP_ORIGIN_REFUSED',
          'the Origin is not a loopback origin: a page from another site may not use MCP through the sidecar',
          { reason: 'ORIGIN' },
        )
        if (exchange.upgrade) return err
        return refuse(exchange, 403, { code: INVALID_REQUEST, message: err.message, id: null }, err)
      }
      if (exchange.upgrade) {
        // MCP over WebSocket (the SDK's client transport): subprotocol `mcp`, every frame one message, each
        // decided in wrapUpgrade. Anything else would carry traffic past the per-message checks.
        const protocols = String(exchange.req.headers['sec-websocket-protocol'] ?? '')
          .split(',')
          .map((p) => p.trim())
        if (!protocols.includes('mcp')) {
          return new SvidecarError(
            'SVD_MCP_INVALID',
            'a WebSocket on an MCP path must speak the mcp subprotocol',
            {
              reason: 'WEBSOCKET',
            },
          )
        }
        exchange.decided = true
        return undefined
      }
      const method = exchange.method
      if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') return undefined
      const version = requestVersion(exchange.req.headers)
      if ('code' in version) {
        exchange.decided = true
        return refuse(
          exchange,
          400,
          version,
          new SvidecarError('SVD_MCP_VERSION_UNSUPPORTED', version.message, { reason: 'PROTOCOL_VERSION' }),
        )
      }
      let sessionId: string | undefined
      let sseSession: string | undefined
      const raw = exchange.req.headers['mcp-session-id']
      if (raw !== undefined && version.era === 'legacy') {
        exchange.decided = true
        const sid = Array.isArray(raw) ? '' : raw
        const refused = sessionRefusal(sessions, sid, exchange)
        if (refused !== undefined) return refused
        sessionId = sid
      } else if (raw !== undefined) {
        // The stateless era has no sessions: a dual-era server must not be handed someone else's.
        exchange.headers.strip.add('mcp-session-id')
      }
      // HTTP+SSE (2024-11-05): the session is the endpoint URI's sessionId, bound when its stream opened. Checked
      // whatever the headers claim: the server that reads it reads no version header.
      const querySid = querySessionId(exchange)
      if (querySid === MANY_SESSIONS) {
        exchange.decided = true
        return refuse(
          exchange,
          400,
          {
            code: INVALID_REQUEST,
            message: 'the endpoint URI names its MCP session more than once',
            id: null,
          },
          new SvidecarError('SVD_MCP_INVALID', 'the endpoint URI names its MCP session more than once', {
            reason: 'SESSION_ID',
          }),
        )
      }
      if (querySid !== undefined) {
        exchange.decided = true
        const refused = sessionRefusal(sseSessions, querySid, exchange)
        if (refused !== undefined) return refused
        sseSession = querySid
      }
      if (method !== 'POST') {
        // Opening the server's stream or ending a session: transport housekeeping, bound to the session above.
        exchange.decided = true
        // Session era: a GET with Last-Event-ID resumes a stream, and the server replays what the stream carried
        // after that event, answers to list requests included, whichever POST asked them (and however often).
        const resume =
          method === 'GET' &&
          sessionId !== undefined &&
          exchange.req.headers['last-event-id'] !== undefined &&
          (engine !== undefined || pins !== undefined)
        if (resume) exchange.headers.set['accept-encoding'] = 'identity'
        states.set(exchange, {
          era: version.era,
          sessionId,
          initialize: false,
          pending: new Map(),
          resume,
          // A GET outside any session may open an HTTP+SSE stream: its `endpoint` event names the session.
          openStream:
            method === 'GET' &&
            version.era === 'legacy' &&
            sessionId === undefined &&
            sseSession === undefined,
        })
        return undefined
      }
      const result = onPost(exchange, version.era, version.version, sessionId, sseSession)
      exchange.decided = true
      return result
    },
    wrapUpgrade(exchange) {
      if (!isMcp(exchange)) return undefined
      return socketFilter(exchange)
    },
    wrapResponse(exchange, head) {
      const state = states.get(exchange)
      if (state === undefined) return undefined
      const ok = head.status >= 200 && head.status < 300
      if (state.openStream === true) return streamWrapper(exchange, head)
      if (state.era === 'legacy') {
        const created = head.headers['mcp-session-id']
        if (state.initialize && ok && typeof created === 'string' && validSessionId(created)) {
          sessions.bind(created, exchange.subject?.toString() ?? '')
        }
        if (state.sessionId !== undefined && ((exchange.method === 'DELETE' && ok) || head.status === 404)) {
          sessions.end(state.sessionId)
        }
      }
      const wrapper =
        state.resume === true
          ? resumedStreamWrapper(exchange, head, state)
          : answerWrapper(exchange, head, state)
      // A session's GET stream keeps its binding in use for as long as it is open.
      if (state.era !== 'legacy' || state.sessionId === undefined || exchange.method !== 'GET' || !ok)
        return wrapper
      return holdingSession(state.sessionId, wrapper)
    },
  }

  /** The wrapper that reads this response's answers (lists, tasks, the server's requests), if any must be read. */
  function answerWrapper(
    exchange: Exchange,
    head: ResponseHead,
    state: McpState,
  ): ResponseWrapper | undefined {
    const hooks: StreamHooks = {
      ...clientRequestHooks(
        exchange,
        () => exchange.req.url ?? exchange.path,
        () => state.sessionId,
      ),
      ...inputRequiredHooks(exchange),
      ...(state.listen === true ? resourceUpdateHooks(exchange) : {}),
      ...taskHooks(exchange),
    }
    if (hooks.clientRequest === undefined && hooks.resourceUpdated === undefined && !reads(state.pending))
      return undefined
    return listFilterWrapper(
      head,
      state.pending,
      keepFor(exchange, listingOf(state.pending)),
      options.maxMessageBytes,
      hooks,
    )
  }

  /** `wrapper`, with the session's binding held until the response is over or closed. */
  function holdingSession(sessionId: string, wrapper: ResponseWrapper | undefined): ResponseWrapper {
    sessions.hold(sessionId)
    let held = true
    const release = () => {
      if (!held) return
      held = false
      sessions.release(sessionId)
    }
    return {
      ...wrapper,
      end() {
        release()
        return wrapper?.end?.()
      },
      closed() {
        release()
        wrapper?.closed?.()
      },
    }
  }

  /**
   * MCP over WebSocket: each client frame is decided as a POST body would be (no batches: the SDK's transport
   * speaks 2025 revisions, which dropped them), a refusal answered on the socket; the answers to list requests
   * are filtered on their way back, matched by id.
   */
  function socketFilter(exchange: Exchange): FrameFilter {
    const pending = new Map<string, PendingAnswer>()
    const max = options.maxMessageBytes
    // The client may reuse an id on a socket: with a policy, every answer is read for the lists it is shaped like.
    const keepAs = engine !== undefined || pins !== undefined ? keepAsFor(exchange) : undefined
    // No way to POST an answer beside the socket: a refused server request is dropped (the server's call times out).
    const asks = clientRequestHooks(
      exchange,
      () => undefined,
      () => undefined,
    ).clientRequest
    return {
      fromClient(text, reply) {
        if (Buffer.byteLength(text) > max) {
          reply(JSON.stringify(errorResponse(null, INVALID_REQUEST, `the message is over ${max} bytes`)))
          return false
        }
        exchange.body = Buffer.from(text)
        exchange.reply = undefined
        states.delete(exchange)
        const settle = (refusal: StageResult): boolean => {
          if (refusal === undefined) {
            for (const [k, v] of states.get(exchange)?.pending ?? []) pending.set(k, v)
            return true
          }
          const body = exchange.reply?.body
          if (body !== undefined && body !== '') reply(body)
          return false
        }
        const r = onPost(exchange, 'legacy', '2025-11-25', undefined, undefined)
        return r instanceof Promise ? r.then(settle) : settle(r)
      },
      fromUpstream(text) {
        if (asks !== undefined && mayHoldClientRequest(text)) {
          let request: ClientRequest | undefined
          try {
            request = clientRequestOf(JSON.parse(text))
          } catch {
            request = undefined
          }
          if (request !== undefined) {
            const deliver = asks(request)
            return deliver instanceof Promise
              ? deliver.then((yes) => (yes ? text : undefined))
              : deliver
                ? text
                : undefined
          }
        }
        if (
          (pending.size === 0 && keepAs === undefined) ||
          !(text.includes('"result"') || text.includes('\\'))
        )
          return text
        let doc: { id?: unknown; result?: unknown } | null
        try {
          doc = JSON.parse(text) as { id?: unknown; result?: unknown } | null
        } catch {
          return text
        }
        const id = doc?.id
        if (typeof id !== 'string' && typeof id !== 'number') return text
        const key = idKey(id)
        let list = pending.get(key)
        if (list !== undefined) pending.delete(key)
        else {
          // Not (or no longer) awaited under this id: read only if it is shaped like a list answer.
          const shape = keepAs === undefined ? undefined : listShapeOf(doc?.result)
          if (shape === undefined) return text
          list = { id, method: shape }
        }
        const answering = new Map<string, PendingAnswer>([[key, list]])
        const w = listFilterWrapper(
          { status: 200, headers: { 'content-type': 'application/json' } },
          answering,
          // The list this answer is for (the rest of `pending` may hold none).
          keepFor(exchange, listingOf(answering)),
          max,
          { ...taskHooks(exchange), ...(keepAs === undefined ? {} : { anyList: keepAs }) },
        )
        w?.data?.(Buffer.from(text))
        const out = w?.end?.()
        return out instanceof Promise ? out.then((b) => b?.toString('utf8')) : (out?.toString('utf8') ?? text)
      },
    }
  }

  /** Who a sampling usage line names. */
  function samplingContext(exchange: Exchange, subject: SpiffeId) {
    return {
      listener: exchange.listener,
      direction: exchange.direction,
      subject,
      ...(exchange.traceparent === undefined ? {} : { traceparent: exchange.traceparent }),
    }
  }

  /**
   * Whether a server's request may reach the agent: the agent's `mcp.client` policy, then for sampling a
   * reservation on its token budget under `key` (which the agent's answer settles).
   */
  function admitClientRequest(
    exchange: Exchange,
    subject: SpiffeId,
    request: ClientRequest,
    key: string,
  ): Admission | Promise<Admission> {
    const budget = (): Admission | Promise<Admission> => {
      if (meter === undefined || request.name !== 'sampling') return true
      return meter.admit(key, samplingContext(exchange, subject), request.params).then(
        (refusal) => refusal ?? true,
        // The store cannot be reached: no sampling that cannot be counted.
        () => 'the budget store cannot be reached',
      )
    }
    if (engine === undefined) return budget()
    exchange.attributes[MCP_ATTRIBUTE] = { method: request.method, name: request.name }
    const settle = (d: PolicyDecision) => (d.decision === 'allow' ? budget() : d)
    const answer = authorize(engine, exchange, { kind: 'mcp.client', name: request.name })
    return answer instanceof Promise ? answer.then(settle) : settle(answer)
  }

  /**
   * On the agent's sidecar, the server's requests of the agent (sampling, elicitation, roots) are decided for the
   * agent; a refused one is answered for it, POSTed to `answerPath()` on the same session.
   */
  function clientRequestHooks(
    exchange: Exchange,
    answerPath: () => string | undefined,
    session: () => string | undefined,
  ): StreamHooks {
    if (exchange.direction !== 'outbound' || (engine === undefined && meter === undefined)) return {}
    const upstream = exchange.upstream
    const subject = exchange.subject
    if (upstream === undefined || subject === undefined) return {}
    const headers: Record<string, string> = {}
    for (const name of ['mcp-session-id', 'mcp-protocol-version']) {
      const v = exchange.req.headers[name]
      if (typeof v === 'string') headers[name] = v
    }
    return {
      clientRequest(request: ClientRequest) {
        const settle = (admission: Admission): boolean => {
          if (admission === true) return true
          const path = answerPath()
          if (path !== undefined)
            void answerServer({ upstream, path, headers }, refusalOf(request, admission))
          return false
        }
        const admission = admitClientRequest(
          exchange,
          subject,
          request,
          samplingKey(exchange, session(), request.id),
        )
        return admission instanceof Promise ? admission.then(settle) : settle(admission)
      },
    }
  }

  /**
   * On the agent's sidecar in the stateless era, the requests an `input_required` answer embeds are admitted
   * as the session era's server requests are; one refused request turns the answer into the agent's error.
   */
  function inputRequiredHooks(exchange: Exchange): StreamHooks {
    const subject = exchange.subject
    if (exchange.direction !== 'outbound' || subject === undefined) return {}
    if (engine === undefined && meter === undefined) return {}
    return {
      inputRequired(id, result) {
        const asked = inputRequiredOf(result)
        if (asked === undefined || asked.requests.length === 0) return undefined
        const key = (r: ClientRequest) => inputKey(exchange, asked.state, String(r.id))
        return screenInputRequests(
          id,
          asked,
          (r) => admitClientRequest(exchange, subject, r, key(r)),
          (r) => meter?.answered(key(r), undefined, samplingContext(exchange, subject)),
        )
      },
    }
  }

  /**
   * A listen stream carries `notifications/resources/updated` only for what the client subscribed to, which was
   * decided when it asked; an update for any other resource is delivered only if the subject may read it. Each
   * URI is decided once per stream (up to a bound, after which decisions are not kept).
   */
  function resourceUpdateHooks(exchange: Exchange): StreamHooks {
    if (engine === undefined) return {}
    const decided = new Map<string, boolean | Promise<boolean>>()
    return {
      resourceUpdated(uri) {
        let allowed = decided.get(uri)
        if (allowed !== undefined) return allowed
        exchange.attributes[MCP_ATTRIBUTE] = { method: 'notifications/resources/updated', uri }
        const answer = authorize(engine, exchange, { kind: 'mcp.resource', uri }, { report: false })
        allowed = answer instanceof Promise ? answer.then(allows) : allows(answer)
        if (decided.size < 1000) decided.set(uri, allowed)
        return allowed
      },
    }
  }

  /**
   * Modern era (2026-07-28 Streamable HTTP "Sending Messages"): the body is a request or a notification, never a
   * response; its mirrored headers must equal it.
   */
  function modernProblem(exchange: Exchange, version: string, m: McpMessage): JsonRpcProblem | undefined {
    if (m.kind === 'response') {
      return {
        code: INVALID_REQUEST,
        message: `a ${version} client sends no JSON-RPC responses (input travels in the retried request)`,
        id: null,
      }
    }
    return mirroredHeaderProblem(exchange, version, m)
  }

  /** Modern era: the mirrored headers against the body, `Mcp-Param-*` included for tools seen listed. */
  function mirroredHeaderProblem(
    exchange: Exchange,
    version: string,
    m: McpMessage,
  ): JsonRpcProblem | undefined {
    const problem = checkMirroredHeaders(exchange.req.headers, version, m)
    if (problem !== undefined || m.kind !== 'request' || m.method !== 'tools/call') return problem
    const name = m.params?.name
    const declared = typeof name === 'string' ? paramTable.get(upstreamOf(exchange), name) : undefined
    if (declared === undefined || declared.length === 0) return undefined
    const mismatch = paramHeaderMismatch(exchange.req.headers, declared, m.params?.arguments)
    return mismatch === undefined ? undefined : { code: HEADER_MISMATCH, message: mismatch, id: m.id }
  }

  /**
   * A resumed session-era stream (GET with Last-Event-ID). Which requests its replayed answers belong to is the
   * client's word (their ids), so every answer is filtered as each list it is shaped like, whatever its id.
   */
  function resumedStreamWrapper(exchange: Exchange, head: ResponseHead, state: McpState) {
    const keepAs = keepAsFor(exchange)
    return sseStreamWrapper(head, new Map(), keepAs('tools/list'), options.maxMessageBytes, {
      ...clientRequestHooks(
        exchange,
        () => exchange.req.url ?? exchange.path,
        () => state.sessionId,
      ),
      anyList: keepAs,
    })
  }

  /** Each list method's `keepFor`, made when first needed, for answers filtered by their shape. */
  function keepAsFor(exchange: Exchange): (method: ListMethod) => KeepItem {
    const keeps = new Map<ListMethod, KeepItem>()
    return (method) => {
      let keep = keeps.get(method)
      if (keep === undefined) {
        keep = keepFor(exchange, method)
        keeps.set(method, keep)
      }
      return keep
    }
  }

  /** Whether the answers in `pending` must be read: lists and input requests only with a policy, tasks always. */
  function reads(pending: PendingLists): boolean {
    if (pending.size === 0) return false
    if (engine !== undefined || pins !== undefined || meter !== undefined) return true
    for (const p of pending.values()) if (p.task === true || p.method === 'tasks/list') return true
    return false
  }

  /** Tasks are bound to the SPIFFE ID whose request created them; `tasks/list` shows each caller its own. */
  function taskHooks(exchange: Exchange): StreamHooks {
    const subject = exchange.subject?.toString() ?? ''
    return {
      taskCreated(result) {
        const task = isObject(result) ? result.task : undefined
        const taskId = isObject(task) ? task.taskId : undefined
        if (typeof taskId === 'string') tasks.bind(taskId, subject)
      },
      ownsTask: (taskId) => tasks.check(taskId, subject) === 'ok',
    }
  }

  /** Whether a list item stays, for this exchange's subject (and, with pinning, whether the tool is unchanged). */
  function keepFor(exchange: Exchange, listing: ListMethod | undefined) {
    const unchanged = (resource: PolicyResource, item: ListedItem) =>
      pins === undefined ||
      resource.kind !== 'mcp.tool' ||
      pins.check(upstreamOf(exchange), resource.name, item, (was, now) =>
        pinDenial(
          exchange,
          resource.name,
          `it is hidden until the change is approved (pinned ${was}, now ${now})`,
        ),
      ) === 'pinned'
    const upstream = upstreamOf(exchange)
    // Whose list, from where, of what: the scope an item left out is audited in (list-audit.ts).
    const who = `${exchange.subject?.toString() ?? ''}\u0000${upstream}\u0000${listing}`
    const attribute = { method: listing }
    // Each distinct name is decided once per list (a list item's decision reads nothing but its name or URI), at
    // one instant: a list is filtered in one turn of the event loop, and a stream's next list decides afresh.
    let decided = new Map<string, boolean | Promise<boolean>>()
    let decide: ReturnType<typeof authorizer> | undefined
    // Decisions kept across lists, when the policy in force decides this kind without reading the context.
    let known: ScopedTable<KnownItem> | undefined
    const knownScope = `${exchange.subject?.toString() ?? ''}\u0000${listing}`
    let turn = false
    let wall = 0
    // A denial is reported when the window says it is due (one options object for the whole list).
    const reporting: AuthorizeOptions = {
      report: (d, r) => listAudits.due(who, itemKey(r), auditTag(d), wall),
    }
    const decideAfresh = (resource: PolicyResource, key: string, options: AuthorizeOptions) => {
      exchange.attributes[MCP_ATTRIBUTE] = attribute
      const answer = (decide as NonNullable<typeof decide>)(resource, options)
      if (answer instanceof Promise) return answer.then(listed)
      const yes = listed(answer)
      // Audited on its own when it is a denial (or one `mode: audit` let through): the window still applies.
      const quiet = answer.decision === 'allow' && answer.wouldDeny !== true
      known?.set(knownScope, key, { listed: yes, tag: quiet ? undefined : auditTag(answer) })
      return yes
    }
    return (resource: PolicyResource, item: ListedItem) => {
      // A tool whose text never names `x-mcp-header` declares no header: it is remembered as such, unparsed.
      if (resource.kind === 'mcp.tool') {
        if (item.mayHold('x-mcp-header')) paramTable.record(upstream, item.value())
        else paramTable.recordNone(upstream, resource.name)
      }
      if (engine === undefined) return unchanged(resource, item)
      const key = itemKey(resource)
      if (!turn) {
        turn = true
        queueMicrotask(() => {
          turn = false
        })
        decide = authorizer(engine, exchange)
        decided = new Map()
        wall = Date.now()
        known = knownFor(engine.contextFree?.(resource.kind))
      }
      const k = known?.get(knownScope, key)
      let allowed: boolean | Promise<boolean> | undefined
      // A kept denial whose audit is due is decided again, and reported.
      if (k !== undefined && !(k.tag !== undefined && listAudits.due(who, key, k.tag, wall)))
        allowed = k.listed
      else {
        allowed = decided.get(key)
        if (allowed === undefined) {
          allowed = decideAfresh(resource, key, k === undefined ? reporting : { report: false })
          decided.set(key, allowed)
        }
      }
      return allowed instanceof Promise
        ? allowed.then((yes) => yes && unchanged(resource, item))
        : allowed && unchanged(resource, item)
    }
  }

  /** The list decisions kept under a context-free policy's token (a reload's new token starts afresh). */
  function knownFor(token: object | undefined): ScopedTable<KnownItem> | undefined {
    if (token === undefined) return undefined
    let table = knownItems.get(token)
    if (table === undefined) {
      table = new ScopedTable(MAX_KNOWN_ITEMS)
      knownItems.set(token, table)
    }
    return table
  }

  /** The decision for a tool that changed since it was pinned, reported on the audit channel. */
  function pinDenial(exchange: Exchange, name: string, what: string): PolicyDecision {
    const decision: PolicyDecision = {
      decision: 'deny',
      ruleId: TOOL_PIN_RULE,
      reason: `tool ${name.slice(0, 200)} changed since it was pinned (name, description or input schema): ${what}`,
      mode: 'enforce',
      engine: 'mcp-lens',
    }
    publishPolicyDecision({
      time: new Date(),
      listener: exchange.listener,
      direction: exchange.direction,
      subject: exchange.subject?.toString() ?? '',
      ...(exchange.peer === undefined || exchange.peer === exchange.subject
        ? {}
        : { peer: exchange.peer.toString() }),
      action: 'mcp.tool',
      resource: name.slice(0, 200),
      decision: 'deny',
      ruleId: TOOL_PIN_RULE,
      reason: decision.reason,
      mode: 'enforce',
      engine: 'mcp-lens',
      wouldDeny: false,
      latencyMs: 0,
      traceparent: exchange.traceparent ?? '',
    })
    return decision
  }

  /**
   * A stream a GET opened outside any session: if its first event is an HTTP+SSE `endpoint`, the session it
   * names is bound to the subject, and the answers to that session's list requests are filtered on it.
   */
  function streamWrapper(exchange: Exchange, head: ResponseHead): ResponseWrapper | undefined {
    const stream: OpenStream = { pending: new Map(), push: undefined }
    let sid: string | undefined
    let endpoint: string | undefined
    const wrapper = sseStreamWrapper(
      head,
      stream.pending,
      keepFor(exchange, undefined),
      options.maxMessageBytes,
      {
        ...clientRequestHooks(
          exchange,
          () => endpoint,
          () => sid,
        ),
        onEndpoint(data) {
          if (sid !== undefined) return
          const named = endpointSessionId(data)
          if (named === undefined) return
          sid = named
          endpoint = endpointPath(data)
          sseSessions.bind(named, exchange.subject?.toString() ?? '')
          streams.set(named, stream)
        },
        consume: (key) => stream.pending.delete(key),
        ...taskHooks(exchange),
        // Every answer of the session comes here, to ids the client may have sent more than once.
        ...(engine !== undefined || pins !== undefined ? { anyList: keepAsFor(exchange) } : {}),
      },
    )
    if (wrapper === undefined) return undefined
    const end = wrapper.end
    // The session lives as long as its stream: SSE clients end it by dropping the stream.
    const forget = () => {
      if (sid === undefined) return
      streams.delete(sid)
      sseSessions.end(sid)
    }
    return {
      ...wrapper,
      attach(push) {
        stream.push = push
      },
      end() {
        forget()
        return end?.()
      },
      closed: forget,
    }
  }

  function allows(d: PolicyDecision): boolean {
    return d.decision === 'allow'
  }

  /** Listed unless denied in the hide style: an explained or forbidden item stays visible. */
  function listed(d: PolicyDecision): boolean {
    return d.decision === 'allow' || styleOf(d) !== 'hide'
  }
}

/** A list item's decision kept across lists: whether it is listed, and what decided a denial (for its audit). */
interface KnownItem {
  readonly listed: boolean
  readonly tag: string | undefined
}

/** What a list item is decided by: a resource's URI, a tool's or prompt's name. */
function itemKey(resource: PolicyResource): string {
  return resource.kind === 'mcp.resource' ? resource.uri : (resource as { name: string }).name
}

/** A message refused before policy, with the JSON-RPC error it is answered with. */
interface Refusal {
  readonly message: McpMessage
  readonly problem: JsonRpcProblem
  /** Refused as not the caller's to ask for (SVD_MCP_DENIED with this reason), not as malformed. */
  readonly reason?: string
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * A stateless-era body sent without `MCP-Protocol-Version`, or with a session-era one: the header must equal the
 * body's `_meta` version, and a server reads such a body as stateless whatever the header says.
 */
function modernWithoutHeader(m: McpMessage, headers: IncomingHttpHeaders): JsonRpcProblem | undefined {
  const v = metaVersion(m)
  if (v === undefined || !(MODERN_VERSIONS as readonly string[]).includes(v)) return undefined
  const sent = headers['mcp-protocol-version']
  return {
    code: HEADER_MISMATCH,
    message:
      sent === undefined
        ? 'the MCP-Protocol-Version header is missing'
        : `MCP-Protocol-Version ${String(sent).slice(0, 40)} differs from the body's _meta version ${v}`,
    id: m.kind === 'notification' ? null : m.id,
  }
}

/** An Origin a page on this host sends: http(s) on localhost, 127.0.0.1, [::1] or a *.localhost name. */
function isLoopbackOrigin(origin: string): boolean {
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false
  const host = url.hostname
  return host === 'localhost' || host === '127.0.0.1' || host === '[::1]' || host.endsWith('.localhost')
}

/** The query parameters that name an HTTP+SSE session: the TypeScript SDK's and the Python SDK's spelling. */
const SESSION_PARAMS = ['sessionId', 'session_id'] as const
/** A query that names its session more than once, in either spelling. */
const MANY_SESSIONS = Symbol('many sessions')

/**
 * The session an HTTP+SSE endpoint URI's query names. Servers differ on which of several values they read
 * (Express gives a list, Starlette the last, Go and URLSearchParams the first): a query naming more than one
 * cannot be checked as the server will read it.
 */
function sessionParam(params: URLSearchParams): string | undefined | typeof MANY_SESSIONS {
  let found: string | undefined
  for (const name of SESSION_PARAMS) {
    for (const value of params.getAll(name)) {
      if (found !== undefined) return MANY_SESSIONS
      found = value
    }
  }
  return found
}

/** The session query parameter of an HTTP+SSE POST (the endpoint URI its stream announced). */
function querySessionId(exchange: Exchange): string | undefined | typeof MANY_SESSIONS {
  const url = exchange.req.url ?? ''
  const q = url.indexOf('?')
  if (q === -1) return undefined
  return sessionParam(new URLSearchParams(url.slice(q + 1)))
}

/** The path and query of an `endpoint` event's URI (where the client POSTs), as the server sent it. */
function endpointPath(data: string): string | undefined {
  try {
    const u = new URL(data.trim(), 'http://endpoint.invalid')
    return u.pathname + u.search
  } catch {
    return undefined
  }
}

/** The session an `endpoint` event's URI names, when it names one. */
function endpointSessionId(data: string): string | undefined {
  try {
    const sid = sessionParam(new URL(data.trim(), 'http://endpoint.invalid').searchParams)
    return typeof sid === 'string' && validSessionId(sid) ? sid : undefined
  } catch {
    return undefined
  }
}
