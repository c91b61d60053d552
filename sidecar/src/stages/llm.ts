/**
 * The LLM lens, for exchanges whose route says `lens: llm`. Three stages,
 * so that policy sits between reading and sending:
 *
 * - `llm-endpoint` names the API from method and path (OpenAI- or
 *   Anthropic-style; `GET /v1/models` is Anthropic's when the request has
 *   `anthropic-version`; `GET /v1/models/<id>` is decided as that model),
 *   and from then on refusals are written in that
 *   provider's error shape. A path that is no LLM endpoint is refused unless
 *   the config forwards unknown paths (then the policy decides its
 *   `http.route`).
 * - `llm` reads the body under the lens's cap (the only exchanges whose body
 *   it reads; a compressed one is decoded and sent on decoded, decode.ts),
 *   takes model, stream flag and token limit from it without
 *   re-serialising it, and names the model as the `llm.model` resource the
 *   policy stage decides. A model list is decided per model instead: the
 *   response is filtered to the models the subject may use.
 * - `llm-provider`, after the policy, sends the call to the first provider of
 *   its API style that serves the model, strips every credential the agent
 *   sent and injects the provider key the sidecar holds. (Keys in the query
 *   string are dropped first of all, by the endpoint stage.)
 */
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib'
import { SvidecarError } from '../errors/index.ts'
import type { Upstreams } from '../forwarder/upstreams.ts'
import {
  ANTHROPIC_ENDPOINTS,
  ANTHROPIC_VERSION_HEADER,
  filterAnthropicModels,
  widenModelPage,
} from '../lens/llm/anthropic.ts'
import { LLM_ATTRIBUTE, type LlmApi, type LlmCall, llmCallOf } from '../lens/llm/call.ts'
import { BodyDecodeFailed, decodeBody, isEncoded } from '../lens/llm/decode.ts'
import { JsonRejected, readJsonObject } from '../lens/llm/json.ts'
import { keyRedaction } from '../lens/llm/key-redaction.ts'
import { filterOpenAiModels, OPENAI_ENDPOINTS } from '../lens/llm/openai.ts'
import { type ApiStyle, type Providers, styleOf } from '../lens/llm/providers.ts'
import { stripCredentialParams } from '../lens/llm/query.ts'
import { LlmRequestRejected, readLlmRequest, validModelName } from '../lens/llm/request.ts'
import { type AuthorizeOptions, authorizer } from '../pipeline/authorize.ts'
import type { Exchange } from '../pipeline/exchange.ts'
import { auditTag, ListAuditWindow } from '../pipeline/list-audit.ts'
import type { ResponseHead, ResponseWrapper, Stage } from '../pipeline/stage.ts'
import type { PolicyEngine } from '../policy/engine.ts'

export interface LlmStageOptions {
  providers: Providers
  upstreams: Upstreams
  /** The most request body bytes read to find the model (also the cap on a model list response). */
  bodyLimit: number
  maxDepth: number
  unknownPaths: 'deny' | 'forward'
  /** Filters model lists; without it nothing is filtered (nothing is decided either). */
  policy?: PolicyEngine
}

/** Credentials an agent might send to a provider; the sidecar's own replaces them. */
export const AGENT_CREDENTIAL_HEADERS = [
  'authorization',
  'x-api-key',
  'api-key',
  'openai-organization',
  'openai-project',
  'x-goog-api-key',
  'cookie',
] as const

// The API of each exchange between the endpoint stage and the body stage.
const apis = new WeakMap<Exchange, LlmApi>()
// The key the provider stage injected, to take out of the answer should the provider quote it (key-redaction.ts).
const injected = new WeakMap<Exchange, string>()
const EMPTY = Buffer.alloc(0)

/** The endpoint and body stages: they go before the policy stage. */
export function llmLensStages(options: LlmStageOptions): Stage[] {
  return [endpointStage(options), bodyStage(options)]
}

function endpointStage(options: LlmStageOptions): Stage {
  return {
    name: 'llm-endpoint',
    onRequest(exchange) {
      if (exchange.lens !== 'llm') return undefined
      // A key in the query string (`?api-key=`, `?key=`) is the agent's too: it never goes upstream.
      if (exchange.req.url !== undefined) exchange.req.url = stripCredentialParams(exchange.req.url)
      const anthropic = exchange.req.headers[ANTHROPIC_VERSION_HEADER] !== undefined
      const key = `${exchange.method} ${exchange.path}`
      const one = exchange.upgrade ? undefined : oneModel(exchange.method, exchange.path)
      if (one !== undefined) {
        // One model's description: decided like a call to that model.
        const call: LlmCall = {
          api: anthropic ? 'anthropic.models' : 'openai.models',
          model: one,
          stream: false,
        }
        exchange.errorStyle = anthropic ? 'anthropic' : 'openai'
        exchange.attributes[LLM_ATTRIBUTE] = call
        exchange.resource = { kind: 'llm.model', name: one }
        return undefined
      }
      const api = exchange.upgrade
        ? undefined
        : key === 'GET /v1/models'
          ? anthropic
            ? 'anthropic.models'
            : 'openai.models'
          : (OPENAI_ENDPOINTS.get(key) ?? ANTHROPIC_ENDPOINTS.get(key))
      exchange.errorStyle = api === undefined ? (anthropic ? 'anthropic' : 'openai') : styleOf(api)
      if (api === undefined) {
        if (options.unknownPaths === 'forward' && !exchange.upgrade) return undefined
        return new SvidecarError(
          'SVD_LLM_ENDPOINT_UNKNOWN',
          `${exchange.upgrade ? 'an upgrade to' : exchange.method} ${exchange.path} is not an LLM endpoint this sidecar forwards`,
          { reason: 'LLM_ENDPOINT_UNKNOWN' },
        )
      }
      if (api === 'openai.models' || api === 'anthropic.models') {
        // Anthropic's list is paged: the filter cuts the client's page from the largest one the provider serves.
        const wide =
          api === 'anthropic.models' && options.policy !== undefined && exchange.req.url !== undefined
            ? widenModelPage(exchange.req.url)
            : undefined
        if (wide !== undefined) exchange.req.url = wide.url
        const call: LlmCall = { api, stream: false, ...(wide === undefined ? {} : { page: wide.page }) }
        exchange.attributes[LLM_ATTRIBUTE] = call
        // The list is decided model by model as it comes back (wrapResponse), not as one request.
        exchange.decided = true
        // The list is read whole to be filtered: ask for it uncompressed.
        exchange.headers.set['accept-encoding'] = 'identity'
        return undefined
      }
      apis.set(exchange, api)
      return undefined
    },
  }
}

const MODEL_PREFIX = '/v1/models/'

/** The model id of `GET /v1/models/<id>`, or undefined for any other request. */
function oneModel(method: string, path: string): string | undefined {
  if (method !== 'GET' || !path.startsWith(MODEL_PREFIX)) return undefined
  const raw = path.slice(MODEL_PREFIX.length)
  if (raw === '' || raw.includes('/')) return undefined
  let id: string
  try {
    id = decodeURIComponent(raw)
  } catch {
    return undefined
  }
  // The same bounds as a model named in a body; anything else is no model (and so an unknown path).
  return validModelName(id) && !id.includes('/') ? id : undefined
}

function bodyStage(options: LlmStageOptions): Stage {
  const listAudits = new ListAuditWindow()
  return {
    name: 'llm',
    bodyLimit: (exchange) => (apis.has(exchange) ? options.bodyLimit : undefined),
    onRequest(exchange) {
      const api = apis.get(exchange)
      if (api === undefined) return undefined
      apis.delete(exchange)
      const encoding = exchange.req.headers['content-encoding']
      if (!isEncoded(encoding)) return readCall(exchange, api, options.maxDepth)
      return decodeBody(exchange.body ?? EMPTY, encoding as string, options.bodyLimit).then(
        (plain) => {
          // The provider gets the decoded bytes the lens decided on, no longer encoded.
          exchange.body = plain
          exchange.headers.strip.add('content-encoding')
          exchange.headers.set['content-length'] = String(plain.length)
          return readCall(exchange, api, options.maxDepth)
        },
        (err: unknown) => {
          if (!(err instanceof BodyDecodeFailed)) throw err
          if (err.problem === 'TOO_LARGE')
            return new SvidecarError('SVD_REQUEST_BODY_TOO_LARGE', err.message, {
              reason: 'DECODED_BODY_OVER_LIMIT',
            })
          return invalid(
            err.problem === 'INVALID' ? 'CONTENT_ENCODING_INVALID' : 'CONTENT_ENCODING_UNSUPPORTED',
            err.message,
          )
        },
      )
    },
    wrapResponse(exchange, head) {
      const call = llmCallOf(exchange.attributes)
      const policy = options.policy
      if (exchange.lens !== 'llm' || policy === undefined || head.status !== 200) return undefined
      if (call?.api !== 'openai.models' && call?.api !== 'anthropic.models') return undefined
      // One model's description was decided before it was sent; only lists are filtered.
      if (call.model !== undefined) return undefined
      return modelListFilter(exchange, head, call, policy, options.bodyLimit, listAudits)
    },
  }
}

/** Reads model, stream flag and token limit from the (decoded) body and names the model for the policy. */
function readCall(exchange: Exchange, api: LlmApi, maxDepth: number): SvidecarError | undefined {
  let fields: ReturnType<typeof readLlmRequest>
  try {
    fields = readLlmRequest(api, exchange.body ?? EMPTY, maxDepth)
  } catch (err) {
    if (err instanceof LlmRequestRejected) return invalid(err.problem, err.message)
    throw err
  }
  const call: LlmCall = {
    api,
    model: fields.model,
    stream: fields.stream,
    ...(fields.maxTokens === undefined ? {} : { maxTokens: fields.maxTokens }),
  }
  exchange.attributes[LLM_ATTRIBUTE] = call
  exchange.resource = { kind: 'llm.model', name: fields.model }
  return undefined
}

function invalid(reason: string, message: string): SvidecarError {
  return new SvidecarError('SVD_LLM_REQUEST_INVALID', message, { reason })
}

/**
 * Holds the list back, then writes it with only the models the subject may use. Anything that cannot be read
 * (too large, an unknown encoding, not the list shape) becomes an empty list: a filter that fails never shows
 * what it could not check.
 */
function modelListFilter(
  exchange: Exchange,
  head: ResponseHead,
  call: LlmCall,
  policy: PolicyEngine,
  cap: number,
  audits: ListAuditWindow,
): ResponseWrapper {
  const api = call.api
  const chunks: Buffer[] = []
  let size = 0
  const empty = () =>
    api === 'anthropic.models'
      ? { data: [], has_more: false, first_id: null, last_id: null }
      : { object: 'list', data: [] }
  const contentEncoding = head.headers['content-encoding']
  const encoding = typeof contentEncoding === 'string' ? contentEncoding.trim().toLowerCase() : undefined
  return {
    // The body changes: its length, validators and encoding no longer describe it; and another subject's list
    // differs, so never from a shared cache.
    headers: {
      remove: ['content-length', 'content-encoding', 'etag', 'last-modified'],
      set: { 'cache-control': 'private' },
    },
    data(chunk) {
      size += chunk.length
      if (size <= cap) chunks.push(chunk)
      return EMPTY
    },
    end() {
      const doc = size > cap ? undefined : readList(Buffer.concat(chunks), encoding, cap)
      if (doc === undefined) return Buffer.from(JSON.stringify(empty()))
      const ids = modelIds(doc)
      // A model left out is audited the first time, not on every list (list-audit.ts).
      const decide = authorizer(policy, exchange)
      const scope = `${exchange.subject?.toString() ?? ''}\u0000${exchange.route ?? exchange.listener}\u0000${api}`
      const now = Date.now()
      const reporting: AuthorizeOptions = {
        report: (d, r) => audits.due(scope, (r as { name: string }).name, auditTag(d), now),
      }
      const verdicts = ids.map((id) => decide({ kind: 'llm.model', name: id }, reporting))
      const write = (allowed: ReadonlySet<string>) => {
        const keep = (id: string) => allowed.has(id)
        const filtered =
          api === 'anthropic.models'
            ? filterAnthropicModels(doc, keep, call.page)
            : filterOpenAiModels(doc, keep)
        return Buffer.from(JSON.stringify(filtered ?? empty()))
      }
      const allowedOf = (decisions: { decision: string }[]) =>
        new Set(ids.filter((_, i) => decisions[i]?.decision === 'allow'))
      if (verdicts.some((v) => v instanceof Promise))
        return Promise.all(verdicts).then((d) => write(allowedOf(d)))
      return write(allowedOf(verdicts as { decision: string }[]))
    },
  }
}

function readList(
  body: Buffer,
  encoding: string | undefined,
  cap: number,
): Record<string, unknown> | undefined {
  let plain: Buffer
  try {
    if (encoding === undefined || encoding === 'identity') plain = body
    else if (encoding === 'gzip' || encoding === 'x-gzip') plain = gunzipSync(body, { maxOutputLength: cap })
    else if (encoding === 'deflate') plain = inflateSync(body, { maxOutputLength: cap })
    else if (encoding === 'br') plain = brotliDecompressSync(body, { maxOutputLength: cap })
    else return undefined
    return readJsonObject(plain)
  } catch (err) {
    if (err instanceof JsonRejected || err instanceof Error) return undefined
    throw err
  }
}

function modelIds(doc: Record<string, unknown>): string[] {
  const data = doc.data
  if (!Array.isArray(data)) return []
  const ids: string[] = []
  for (const item of data) {
    const id = (item as { id?: unknown } | null)?.id
    if (typeof id === 'string') ids.push(id)
  }
  return ids
}

/** Goes after the policy stage: only an authorized call learns which provider serves it, or gets a key. */
export function llmProviderStage(options: LlmStageOptions): Stage {
  return {
    name: 'llm-provider',
    onRequest(exchange) {
      if (exchange.lens !== 'llm') return undefined
      const call = llmCallOf(exchange.attributes)
      const style: ApiStyle = exchange.errorStyle === 'anthropic' ? 'anthropic' : 'openai'
      const provider = options.providers.pick(style, call?.model)
      if (provider === undefined) {
        return new SvidecarError(
          'SVD_LLM_NO_PROVIDER',
          call?.model === undefined
            ? `no ${style === 'anthropic' ? 'Anthropic' : 'OpenAI'}-style provider is configured`
            : `no ${style === 'anthropic' ? 'Anthropic' : 'OpenAI'}-style provider serves model ${call.model}`,
          { reason: 'LLM_NO_PROVIDER' },
        )
      }
      const upstream = options.upstreams.get(provider.upstream)
      if (upstream === undefined) {
        // The config check makes every provider's upstream exist; this is a bug if it happens.
        return new SvidecarError('SVD_INTERNAL', 'internal error', {
          reason: 'LLM_PROVIDER_UPSTREAM_MISSING',
        })
      }
      let key: string | undefined
      if (provider.credential !== undefined) {
        key = provider.credential.key
        if (key === undefined) {
          // Where the key should come from and why it failed is in the sidecar's log, not for the agent.
          return new SvidecarError(
            'SVD_LLM_CREDENTIAL_UNAVAILABLE',
            `the sidecar holds no usable key for provider ${provider.name}`,
            { reason: 'LLM_CREDENTIAL_UNAVAILABLE' },
          )
        }
      }
      const { strip, set } = exchange.headers
      for (const h of AGENT_CREDENTIAL_HEADERS) strip.add(h)
      if (key !== undefined) {
        if (provider.kind === 'anthropic') set['x-api-key'] = key
        else set.authorization = `Bearer ${key}`
        injected.set(exchange, key)
        // An error body is searched for the key as it passes: it must come uncompressed to be read.
        set['accept-encoding'] = 'identity'
      }
      if (provider.kind === 'anthropic' && exchange.req.headers[ANTHROPIC_VERSION_HEADER] === undefined)
        set[ANTHROPIC_VERSION_HEADER] = provider.anthropicVersion
      if (upstream.kind === 'https') {
        strip.add('host')
        set.host = upstream.url.host
      }
      exchange.upstream = upstream
      exchange.route = provider.upstream
      if (call !== undefined) exchange.attributes[LLM_ATTRIBUTE] = { ...call, provider: provider.name }
      return undefined
    },
    wrapResponse(exchange, head) {
      const key = injected.get(exchange)
      return key === undefined ? undefined : keyRedaction(key, head)
    },
  }
}
