/**
 * Token estimates for when a provider reports none: gpt-tokenizer's o200k
 * encoding (GPT-4o's) stands in for every model. Close for OpenAI models,
 * within a few tens of percent for others: good enough for a budget, and
 * always marked as an estimate. Its tables cost about 75 MB and a few hundred
 * milliseconds to load: a sidecar whose config counts tokens loads them
 * before it is ready (sidecar.ts), one without LLM traffic never does. Other
 * callers load them with the first estimate they ask for; until they are in,
 * a text counts as characters / 4. They load in a worker thread
 * (tokenizer.ts), so that this thread's collector never traces them; counts
 * are still answered synchronously.
 *
 * Either way a text never counts as more tokens than its UTF-8 bytes (a BPE
 * token is at least one byte; characters / 4 is less than that), which is
 * what lets callers skip the tokenizer when an upper bound already answers
 * their question (`textTokensAtMost`, `inputTokensAtMost`).
 */
import { isUtf8 } from 'node:buffer'
import { startTokenCounter, type TokenCounter } from './tokenizer.ts'

// The tokenizer is linear in its input; a multi-megabyte prompt is counted by length beyond this.
const MAX_TOKENIZED_CHARS = 256 * 1024
const CHARS_PER_TOKEN = 4

let counter: TokenCounter | undefined
let loading: Promise<void> | undefined

/**
 * Starts the tokenizer (once), in a worker thread of its own (tokenizer-worker.ts): its tables stay off this
 * thread's heap. Resolves when it is there, or when it failed to start (then length / 4).
 */
export function loadTokenizer(): Promise<void> {
  loading ??= startTokenCounter().then(
    (c) => {
      counter = c
    },
    () => {},
  )
  return loading
}

function byLength(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN)
}

/** Each text's tokens (every text counted on its own), in one call to the tokenizer; `exact` when it answered. */
function countEach(texts: readonly string[]): { counts: number[]; exact: boolean } {
  if (counter === undefined) {
    void loadTokenizer()
    return { counts: texts.map(byLength), exact: false }
  }
  const sent = texts.map((t) => (t.length > MAX_TOKENIZED_CHARS ? t.slice(0, MAX_TOKENIZED_CHARS) : t))
  const counted = counter.count(sent)
  if (counted === undefined) return { counts: texts.map(byLength), exact: false }
  const counts = texts.map((t, i) => {
    const n = counted[i] as number
    return t.length > MAX_TOKENIZED_CHARS ? n + byLength(t.slice(MAX_TOKENIZED_CHARS)) : n
  })
  return { counts, exact: true }
}

export function estimateText(text: string): number {
  if (text === '') return 0
  return countEach([text]).counts[0] as number
}

/** The sum of each text's estimate, in one call to the tokenizer. */
export function estimateTexts(texts: readonly string[]): number {
  let total = 0
  for (const n of countEach(texts.filter((t) => t !== '')).counts) total += n
  return total
}

/** At least `estimateText(text)`, without the tokenizer: the text's UTF-8 bytes. */
export function textTokensAtMost(text: string): number {
  return Buffer.byteLength(text, 'utf8')
}

/**
 * At least `estimateInput(body)`, without parsing or the tokenizer: the prompt's strings take at least their
 * UTF-8 bytes in the body (escapes only make them longer, quotes outnumber the separators), so the body's length
 * bounds them, unless the body is not UTF-8: a stray byte decodes to U+FFFD, three bytes.
 */
export function inputTokensAtMost(body: Buffer | undefined): number {
  if (body === undefined) return 0
  return isUtf8(body) ? body.length : 3 * body.length
}

/** A cheap upper bound for a reservation: JSON punctuation and field names make bytes/4 an overestimate. */
export function quickInputEstimate(body: Buffer | undefined): number {
  return body === undefined ? 0 : Math.ceil(body.length / CHARS_PER_TOKEN)
}

// Prompt strings counted lately, with their counts, least recently used first. An agent sends its system
// prompt, tools and the conversation so far again on every call: only what is new gets tokenized. Bounded by
// characters held (the strings themselves are the keys); short strings are cheaper to count than to look up.
const CACHE_MAX_CHARS = 2 * 1024 * 1024
const CACHE_MIN_CHARS = 256
const counted = new Map<string, number>()
let countedChars = 0

function cacheable(text: string): boolean {
  return text.length >= CACHE_MIN_CHARS && text.length <= CACHE_MAX_CHARS / 4
}

function remember(text: string, n: number): void {
  counted.set(text, n)
  countedChars += text.length
  for (const old of counted.keys()) {
    if (countedChars <= CACHE_MAX_CHARS) break
    counted.delete(old)
    countedChars -= old.length
  }
}

/**
 * The prompt's tokens from the request body: every string value under the fields that carry the prompt
 * (`messages`, `input`, `prompt`, `system`, `instructions`, `tools`), not the JSON around them, each string
 * counted on its own plus one token between strings (as a newline between them would be).
 */
export function estimateInput(body: Buffer | undefined): number {
  if (body === undefined || body.length === 0) return 0
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    return quickInputEstimate(body)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return quickInputEstimate(body)
  const parts: string[] = []
  const record = parsed as Record<string, unknown>
  for (const key of ['system', 'instructions', 'messages', 'input', 'prompt', 'tools'])
    if (Object.hasOwn(record, key)) collect(record[key], parts, 0)
  let chars = 0
  for (const part of parts) chars += part.length
  // Past the tokenizer's cap the text is counted as one, the rest of it by length.
  if (chars > MAX_TOKENIZED_CHARS) return estimateText(parts.join('\n'))
  let tokens = Math.max(0, parts.length - 1)
  // Parts seen lately answer from the cache; the rest go to the tokenizer together.
  const todo: string[] = []
  for (const part of parts) {
    if (part === '') continue
    const hit = cacheable(part) ? counted.get(part) : undefined
    if (hit === undefined) {
      todo.push(part)
      continue
    }
    counted.delete(part)
    counted.set(part, hit)
    tokens += hit
  }
  if (todo.length === 0) return tokens
  const { counts, exact } = countEach(todo)
  for (let i = 0; i < todo.length; i++) {
    const part = todo[i] as string
    const n = counts[i] as number
    tokens += n
    // Only the tokenizer's counts are kept: a stand-in would outlive the tokenizer's arrival.
    if (exact && cacheable(part) && !counted.has(part)) remember(part, n)
  }
  return tokens
}

const MAX_DEPTH = 64

function collect(v: unknown, out: string[], depth: number): void {
  if (depth > MAX_DEPTH) return
  if (typeof v === 'string') out.push(v)
  else if (Array.isArray(v)) for (const item of v) collect(item, out, depth + 1)
  else if (v !== null && typeof v === 'object')
    for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
      // Images and audio as base64 are not text tokens; their cost is the provider's business.
      if (k === 'data' || k === 'image_url' || k === 'url') continue
      collect(item, out, depth + 1)
    }
}
