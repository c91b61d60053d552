/**
 * Token accounting for LLM calls (behind the LLM lens, which sets
 * `attributes.llm`; without it this stage does nothing). Before forwarding,
 * the provider is asked for an uncompressed answer (the meter reads its
 * bytes), and an OpenAI chat or completions stream that did not ask for usage gets
 * `stream_options.include_usage` spliced into its body, and the usage chunk
 * that buys is hidden from the client again. On the response, a meter counts
 * tokens from the bytes as they pass (lens/llm/usage/meter.ts); no event
 * waits for it. An SSE event over the cap ends the stream with an error frame
 * instead of being buffered. When the exchange ends, however it ends, one
 * `llmUsage` event reports the call: exact or estimated tokens, time to first
 * token, and the budget left once the budget stage settled.
 */
import { SvidecarError } from '../errors/index.ts'
import { type LlmApi, llmCallOf } from '../lens/llm/call.ts'
import { loadTokenizer } from '../lens/llm/usage/estimate.ts'
import { includeUsage } from '../lens/llm/usage/include-usage.ts'
import { UsageMeter } from '../lens/llm/usage/meter.ts'
import { USAGE_ATTRIBUTE, type UsageState, usageStateOf } from '../lens/llm/usage/state.ts'
import { terminalFrame } from '../lens/llm/usage/terminal.ts'
import { publishLlmUsage } from '../observe/events.ts'
import type { Stage } from '../pipeline/stage.ts'

export interface UsageStageOptions {
  /** The largest SSE event (and JSON body read whole for its usage), in bytes. */
  maxEventBytes?: number
  /** Model names that may be metric label values (the config's); any other model is labelled `other`. */
  knownModels?: Iterable<string>
}

export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024

const METERED: ReadonlySet<LlmApi> = new Set([
  'openai.chat',
  'openai.completions',
  'openai.responses',
  'openai.embeddings',
  'anthropic.messages',
  'anthropic.count_tokens',
])
const SPLICED: ReadonlySet<LlmApi> = new Set(['openai.chat', 'openai.completions'])
const EMPTY = Buffer.alloc(0)

export function usageStage(options: UsageStageOptions = {}): Stage {
  const maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES
  const known = new Set(options.knownModels ?? [])
  return {
    name: 'llm-usage',
    onRequest(exchange) {
      const call = llmCallOf(exchange.attributes)
      if (call === undefined || !METERED.has(call.api)) return undefined
      // The sidecar loads the tokenizer before it is ready; a stage built elsewhere (a library user's pipeline)
      // loads it on its first stream, where estimates are common (a stream cut short, a budget following it).
      if (call.stream) loadTokenizer()
      const state: UsageState = { hideUsageChunk: false }
      exchange.attributes[USAGE_ATTRIBUTE] = state
      // The meter reads the provider's bytes: the usage in a JSON body, the SSE events it drops or ends a stream
      // between. A compressed answer (the SDKs' fetch asks for one, providers send one) would hide all of that,
      // and a terminal frame written into a gzip stream would corrupt it.
      exchange.headers.set['accept-encoding'] = 'identity'
      if (call.stream && SPLICED.has(call.api) && exchange.body !== undefined) {
        const spliced = includeUsage(exchange.body)
        if (spliced.kind === 'spliced') {
          exchange.body = spliced.body
          exchange.headers.set['content-length'] = String(spliced.body.length)
          state.hideUsageChunk = true
        }
      }
      exchange.onEnd((status, code) => {
        const meter = state.meter
        const usage = meter?.finish() ?? { inputTokens: 0, outputTokens: 0, estimated: false }
        state.usage = usage
        const ttft = meter?.timeToFirstTokenMs
        const durationMs = performance.now() - exchange.started
        // The budget stage's end callback runs right after this one and sets `settled`: wait a turn for it.
        queueMicrotask(() => {
          const settled = state.settled ?? Promise.resolve(undefined)
          settled.then(
            (budget) => {
              const subject = exchange.subject?.toString()
              publishLlmUsage({
                time: new Date(),
                listener: exchange.listener,
                direction: exchange.direction,
                ...(subject === undefined ? {} : { subject }),
                api: call.api,
                ...(call.model === undefined ? {} : { model: call.model }),
                modelLabel: call.model !== undefined && known.has(call.model) ? call.model : 'other',
                ...(call.provider === undefined ? {} : { provider: call.provider }),
                status: meter === undefined ? 0 : status,
                inputTokens: usage.inputTokens,
                outputTokens: usage.outputTokens,
                ...(usage.cachedInputTokens === undefined
                  ? {}
                  : { cachedInputTokens: usage.cachedInputTokens }),
                ...(usage.cacheWriteInputTokens === undefined
                  ? {}
                  : { cacheWriteInputTokens: usage.cacheWriteInputTokens }),
                estimated: usage.estimated,
                ...(usage.reason === undefined ? {} : { estimateReason: usage.reason }),
                ...(ttft === undefined ? {} : { timeToFirstTokenMs: ttft }),
                durationMs,
                ...(code === undefined ? {} : { code }),
                ...(budget === undefined ? {} : { budget }),
                ...(state.budgetRefusal === undefined ? {} : { budgetRefusal: state.budgetRefusal }),
                ...(exchange.traceparent === undefined ? {} : { traceparent: exchange.traceparent }),
              })
            },
            () => {},
          )
        })
      })
      return undefined
    },
    wrapResponse(exchange, head) {
      const state = usageStateOf(exchange)
      const call = llmCallOf(exchange.attributes)
      if (state === undefined || call === undefined) return undefined
      const contentType = head.headers['content-type']
      const meter = new UsageMeter({
        api: call.api,
        status: head.status,
        contentType: Array.isArray(contentType) ? contentType[0] : contentType,
        hideUsageChunk: state.hideUsageChunk,
        maxEventBytes,
        requestBody: exchange.body,
        started: exchange.started,
      })
      state.meter = meter
      return {
        // A stream the sidecar may shorten (the hidden usage chunk) or end early (a cut) cannot keep a length.
        ...(meter.streaming ? { headers: { remove: ['content-length'] } } : {}),
        data(chunk) {
          const out = meter.data(chunk)
          if (Buffer.isBuffer(out)) return out
          const err = new SvidecarError(
            'SVD_UPSTREAM_PROTOCOL',
            `the upstream sent a stream event larger than ${maxEventBytes} bytes; the stream was ended there`,
            { reason: 'SSE_EVENT_TOO_LARGE' },
          )
          head.cut?.(Buffer.concat([out.overflow, terminalFrame(call.api, err, meter.nextSequence)]), err)
          return EMPTY
        },
      }
    },
  }
}
