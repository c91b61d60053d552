/**
 * Counts one LLM response's tokens from its bytes as they pass to the client:
 * SSE streams event by event (eventsource-parser on whole events, see
 * sse-frames.ts), JSON bodies from a capped copy. Each API reports usage its
 * own way (protocols.md §10–11):
 * - OpenAI chat and completions: a last chunk with `choices: []` and `usage`,
 *   sent only when asked; the meter drops it again for a client that did not ask;
 * - the Responses API: `response.usage` on `response.completed` (or
 *   `response.incomplete`, `response.failed`);
 * - Anthropic: input counts in `message_start`, a cumulative `output_tokens`
 *   in each `message_delta` (the latest wins, the input counts are kept).
 * Output text seen on the way is kept for the tokenizer, so a stream that
 * never delivers its usage still has an (estimated) figure, and a budget can
 * follow a stream while it runs. It is counted only when a figure is asked
 * for: most calls end with the provider's usage and a budget far from its
 * limit, which never need it (`tokensSoFarAtMost` answers those without the
 * tokenizer).
 */
import { createParser, type EventSourceMessage, type EventSourceParser } from 'eventsource-parser'
import type { LlmApi } from '../call.ts'
import { estimateInput, estimateTexts, textTokensAtMost } from './estimate.ts'
import { SseFrames } from './sse-frames.ts'
import { count, type EstimateReason, type LlmUsage } from './usage.ts'

export interface MeterOptions {
  api: LlmApi
  status: number
  contentType: string | undefined
  /** Drop OpenAI's usage-only chunk: the sidecar asked for it, not the client. */
  hideUsageChunk: boolean
  /** The largest SSE event (and JSON body scanned whole) in bytes. */
  maxEventBytes: number
  /** The request body, for an input estimate when the provider reports none. */
  requestBody: Buffer | undefined
  /** performance.now() of the request's arrival, for time to first token. */
  started: number
}

/** The chunk to pass on, or the end of the stream because an event was over the cap. */
export type MeterOutput = Buffer | { overflow: Buffer }

// JSON bodies past this are searched for usage in their tail only (an embeddings answer can be megabytes).
const JSON_TAIL_BYTES = 64 * 1024
// Output text kept uncounted up to this many bytes, then counted (the meter holds no more than this of it).
const UNCOUNTED_BYTES = 64 * 1024

export class UsageMeter {
  readonly api: LlmApi
  readonly #opts: MeterOptions
  readonly #sse: boolean
  #frames: SseFrames | undefined
  #parser: EventSourceParser | undefined
  // The verdict on the event being parsed: drop it (the hidden usage chunk).
  #drop = false
  #json: Buffer[] = []
  #jsonBytes = 0
  #jsonTail = false
  #input: number | undefined
  #output: number | undefined
  #cached: number | undefined
  #cacheWrite: number | undefined
  // Tokens of the output text counted so far, and the text not counted yet with its UTF-8 bytes (a bound).
  #outputSeen = 0
  #uncounted: string[] = []
  #uncountedBytes = 0
  #malformed = false
  #overflow = false
  #firstTokenAt: number | undefined
  #final: LlmUsage | undefined
  // The Responses API numbers its events; a frame the sidecar adds continues the count.
  #sequence = -1
  // The answer is complete (its usage report or last event passed): nothing is left to generate.
  #answered = false

  constructor(opts: MeterOptions) {
    this.api = opts.api
    this.#opts = opts
    this.#sse = (opts.contentType ?? '').toLowerCase().startsWith('text/event-stream')
    if (this.#sse) {
      this.#frames = new SseFrames(opts.maxEventBytes)
      this.#parser = createParser({
        onEvent: (e) => this.#event(e),
        maxBufferSize: opts.maxEventBytes,
      })
    }
  }

  /** Time from the request's arrival to the first output, in ms (streams only). */
  get timeToFirstTokenMs(): number | undefined {
    return this.#firstTokenAt === undefined ? undefined : this.#firstTokenAt - this.#opts.started
  }

  /** Tokens known to be used so far: the provider's figures where they arrived, the estimate where not. */
  get tokensSoFar(): number {
    this.#countOutput()
    return (this.#input ?? 0) + (this.#cacheWrite ?? 0) + Math.max(this.#output ?? 0, this.#outputSeen)
  }

  /** At least `tokensSoFar`, without the tokenizer: text not counted yet counts as its bytes. */
  get tokensSoFarAtMost(): number {
    return (
      (this.#input ?? 0) +
      (this.#cacheWrite ?? 0) +
      Math.max(this.#output ?? 0, this.#outputSeen + this.#uncountedBytes)
    )
  }

  /** Whether the provider's input count has arrived (else a budget keeps its reservation's input estimate). */
  get inputKnown(): boolean {
    return this.#input !== undefined
  }

  get streaming(): boolean {
    return this.#sse
  }

  /** The stream's answer is complete: what follows is its usage report or end marker, no more output. */
  get answered(): boolean {
    return this.#answered
  }

  /** The `sequence_number` an event added after the ones seen takes (Responses API streams). */
  get nextSequence(): number {
    return this.#sequence + 1
  }

  data(chunk: Buffer): MeterOutput {
    if (this.#final !== undefined) return chunk
    if (!this.#sse) {
      this.#collectJson(chunk)
      return chunk
    }
    const frames = this.#frames as SseFrames
    const { events, overflow } = frames.push(chunk)
    let out: Buffer[] | undefined
    let kept = 0
    for (let i = 0; i < events.length; i++) {
      const ev = events[i] as Buffer
      this.#drop = false
      try {
        this.#parser?.feed(ev.toString('utf8'))
      } catch {
        // The parser gave up (its own cap): treated like an event over the cap below.
        this.#overflow = true
      }
      if (this.#drop) {
        out ??= events.slice(0, i)
        continue
      }
      kept += ev.length
      out?.push(ev)
    }
    const list = out ?? events
    const pass =
      list.length === 1 && kept === chunk.length
        ? (list[0] as Buffer)
        : list.length === 0
          ? EMPTY
          : Buffer.concat(list)
    if (overflow || this.#overflow) {
      this.#overflow = true
      return { overflow: pass }
    }
    return pass
  }

  /** The usage, once the response is over (however it ended); the same answer on every call. */
  finish(): LlmUsage {
    if (this.#final !== undefined) return this.#final
    if (!this.#sse) this.#readJson()
    this.#final = this.#result()
    this.#parser = undefined
    this.#frames = undefined
    this.#json = []
    this.#uncounted = []
    return this.#final
  }

  #result(): LlmUsage {
    // An error answer is not billed by the providers.
    if (this.#opts.status >= 400) return { inputTokens: 0, outputTokens: 0, estimated: false }
    const extra = {
      ...(this.#cached === undefined ? {} : { cachedInputTokens: this.#cached }),
      ...(this.#cacheWrite === undefined ? {} : { cacheWriteInputTokens: this.#cacheWrite }),
    }
    if (!this.#overflow && !this.#malformed && this.#input !== undefined && this.#output !== undefined)
      return { inputTokens: this.#input, outputTokens: this.#output, ...extra, estimated: false }
    const reason: EstimateReason = this.#overflow
      ? 'EVENT_TOO_LARGE'
      : this.#malformed
        ? 'MALFORMED_USAGE'
        : this.#sse || this.#jsonTail || this.#jsonBytes > 0
          ? 'NO_USAGE'
          : 'UNREADABLE'
    return {
      inputTokens: this.#input ?? estimateInput(this.#opts.requestBody),
      outputTokens: Math.max(this.#output ?? 0, this.#countOutput()),
      ...extra,
      estimated: true,
      reason,
    }
  }

  #firstToken(text: string): void {
    if (text === '') return
    this.#firstTokenAt ??= performance.now()
    this.#uncounted.push(text)
    this.#uncountedBytes += textTokensAtMost(text)
    if (this.#uncountedBytes > UNCOUNTED_BYTES) this.#countOutput()
  }

  /** Counts the output text not counted yet (each piece on its own, as it came); the output tokens seen. */
  #countOutput(): number {
    if (this.#uncounted.length > 0) {
      this.#outputSeen += estimateTexts(this.#uncounted)
      this.#uncounted = []
      this.#uncountedBytes = 0
    }
    return this.#outputSeen
  }

  #event(e: EventSourceMessage): void {
    if (e.data === '[DONE]') {
      this.#answered = true
      return
    }
    let data: unknown
    try {
      data = JSON.parse(e.data)
    } catch {
      return
    }
    if (!isObject(data)) return
    switch (this.api) {
      case 'openai.chat':
      case 'openai.completions':
        this.#openaiChunk(data)
        break
      case 'openai.responses':
        this.#responsesEvent(data)
        break
      case 'anthropic.messages':
        this.#anthropicEvent(e.event, data)
        break
    }
  }

  #openaiChunk(data: Record<string, unknown>): void {
    const choices = data.choices
    if (Array.isArray(choices))
      for (const c of choices) {
        if (!isObject(c)) continue
        if (typeof c.text === 'string') this.#firstToken(c.text)
        const delta = c.delta
        if (!isObject(delta)) continue
        if (typeof delta.content === 'string') this.#firstToken(delta.content)
        if (typeof delta.refusal === 'string') this.#firstToken(delta.refusal)
        if (Array.isArray(delta.tool_calls))
          for (const t of delta.tool_calls)
            if (isObject(t) && isObject(t.function) && typeof t.function.arguments === 'string')
              this.#firstToken(t.function.arguments)
      }
    const usage = data.usage
    if (usage === undefined || usage === null) return
    this.#openaiUsage(usage, 'prompt_tokens', 'completion_tokens', 'prompt_tokens_details')
    if (Array.isArray(choices) && choices.length === 0) {
      // The usage chunk comes after every choice has finished.
      this.#answered = true
      if (this.#opts.hideUsageChunk) this.#drop = true
    }
  }

  #openaiUsage(usage: unknown, input: string, output: string, details: string): void {
    if (!isObject(usage)) {
      this.#malformed = true
      return
    }
    const i = count(usage[input])
    const o = count(usage[output])
    if (i === undefined || o === undefined) {
      this.#malformed = true
      return
    }
    this.#input = i
    this.#output = o
    const d = usage[details]
    if (isObject(d)) {
      const cached = count(d.cached_tokens)
      if (cached !== undefined) this.#cached = cached
    }
  }

  #responsesEvent(data: Record<string, unknown>): void {
    const type = data.type
    if (typeof type !== 'string') return
    const seq = data.sequence_number
    if (typeof seq === 'number' && Number.isSafeInteger(seq) && seq > this.#sequence) this.#sequence = seq
    if (type.endsWith('.delta')) {
      if (typeof data.delta === 'string') this.#firstToken(data.delta)
      return
    }
    if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') {
      this.#answered = true
      const response = data.response
      if (!isObject(response)) return
      if (response.usage === null || response.usage === undefined) return
      this.#openaiUsage(response.usage, 'input_tokens', 'output_tokens', 'input_tokens_details')
    }
  }

  #anthropicEvent(event: string | undefined, data: Record<string, unknown>): void {
    const type = event ?? data.type
    if (type === 'content_block_delta') {
      const d = data.delta
      if (!isObject(d)) return
      for (const f of ['text', 'partial_json', 'thinking'])
        if (typeof d[f] === 'string') this.#firstToken(d[f] as string)
      return
    }
    if (type === 'message_start') {
      const m = data.message
      if (isObject(m)) this.#anthropicUsage(m.usage, true)
      return
    }
    if (type === 'message_delta') {
      // The last message_delta has the stop reason and the final output count; only message_stop follows.
      if (isObject(data.delta) && typeof data.delta.stop_reason === 'string') this.#answered = true
      this.#anthropicUsage(data.usage, false)
      return
    }
    if (type === 'message_stop') this.#answered = true
  }

  /** `message_start` carries the input counts; every `message_delta` the cumulative output (latest wins). */
  #anthropicUsage(usage: unknown, start: boolean): void {
    if (!isObject(usage)) {
      this.#malformed = true
      return
    }
    const o = count(usage.output_tokens)
    if (o === undefined) {
      this.#malformed = true
      return
    }
    // At message_start the output count is a placeholder (often 1); the last message_delta has the figure.
    if (!start) this.#output = o
    this.#anthropicInput(usage, start)
  }

  #anthropicInput(usage: Record<string, unknown>, required: boolean): void {
    // A message_delta may repeat the input counts (cumulative as well); absent, the start's stay.
    const i = count(usage.input_tokens)
    if (usage.input_tokens !== undefined && usage.input_tokens !== null && i === undefined)
      this.#malformed = true
    if (i !== undefined) this.#input = i
    else if (required) this.#malformed = true
    const read = count(usage.cache_read_input_tokens)
    if (read !== undefined) this.#cached = read
    const write = count(usage.cache_creation_input_tokens)
    if (write !== undefined) this.#cacheWrite = write
  }

  #collectJson(chunk: Buffer): void {
    if (this.#jsonTail) {
      this.#json.push(Buffer.from(chunk))
      this.#jsonBytes += chunk.length
      while (this.#json.length > 1 && this.#jsonBytes - (this.#json[0] as Buffer).length >= JSON_TAIL_BYTES)
        this.#jsonBytes -= (this.#json.shift() as Buffer).length
      return
    }
    this.#json.push(Buffer.from(chunk))
    this.#jsonBytes += chunk.length
    if (this.#jsonBytes > this.#opts.maxEventBytes) this.#jsonTail = true
  }

  #readJson(): void {
    if (this.#jsonBytes === 0) return
    const text = Buffer.concat(this.#json).toString('utf8')
    let body: unknown
    if (!this.#jsonTail) {
      try {
        body = JSON.parse(text)
      } catch {
        return
      }
      if (!isObject(body)) return
    } else {
      // Too large to parse whole: the usage object is the body's last member for both providers.
      const usage = lastObjectAfter(text, '"usage"')
      if (usage === undefined) return
      body = { usage }
    }
    const b = body as Record<string, unknown>
    if (this.api.startsWith('anthropic.')) {
      if (this.api === 'anthropic.count_tokens') {
        // Counting tokens costs none.
        this.#input = 0
        this.#output = 0
        return
      }
      if (!isObject(b.usage)) {
        this.#malformed = b.usage !== undefined
        return
      }
      const o = count(b.usage.output_tokens)
      if (o === undefined) this.#malformed = true
      else this.#output = o
      this.#anthropicInput(b.usage, true)
      return
    }
    if (b.usage === undefined || b.usage === null) return
    if (this.api === 'openai.responses')
      this.#openaiUsage(b.usage, 'input_tokens', 'output_tokens', 'input_tokens_details')
    else if (this.api === 'openai.embeddings') {
      const usage = b.usage
      const i = isObject(usage) ? count(usage.prompt_tokens) : undefined
      if (i === undefined) this.#malformed = true
      else {
        this.#input = i
        this.#output = 0
      }
    } else this.#openaiUsage(b.usage, 'prompt_tokens', 'completion_tokens', 'prompt_tokens_details')
  }
}

const EMPTY = Buffer.alloc(0)

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** The JSON object after the last `key:` in `text`, parsed; undefined when there is none or it does not parse. */
function lastObjectAfter(text: string, key: string): Record<string, unknown> | undefined {
  const at = text.lastIndexOf(key)
  if (at === -1) return undefined
  const open = text.indexOf('{', at + key.length)
  if (open === -1 || text.slice(at + key.length, open).trim() !== ':') return undefined
  let depth = 0
  let inString = false
  for (let i = open; i < text.length; i++) {
    const c = text[i]
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
    } else if (c === '"') inString = true
    else if (c === '{') depth++
    else if (c === '}') {
      depth--
      if (depth === 0) {
        try {
          const v: unknown = JSON.parse(text.slice(open, i + 1))
          return isObject(v) ? v : undefined
        } catch {
          return undefined
        }
      }
    }
  }
  return undefined
}
