/**
 * Token estimates for when a provider reports none: gpt-tokenizer's o200k
 * encoding (GPT-4o's) stands in for every model. Close for OpenAI models,
 * within a few tens of percent for others: good enough for a budget, and
 * always marked as an estimate. Its tables cost about 75 MB and a few hundred
 * milliseconds to load: a sidecar whose config counts tokens loads them
 * before it is ready (sidecar.ts), one without LLM traffic never does. Other
 * callers load them with the first estimate they ask for; until they are in,
 * a text counts as characters / 4.
 *
 * Either way a text never counts as more tokens than its UTF-8 bytes (a BPE
 * token is at least one byte; characters / 4 is less than that), which is
 * what lets callers skip the tokenizer when an upper bound already answers
 * their question (`textTokensAtMost`, `inputTokensAtMost`).
 */
import { isUtf8 } from 'node:buffer'

// The tokenizer is linear in its input; a multi-megabyte prompt is counted by length beyond this.
const MAX_TOKENIZED_CHARS = 256 * 1024
const CHARS_PER_TOKEN = 4

let countTokens: ((text: string, options?: { disallowedSpecial: Set<string> }) => number) | undefined
// A prompt or reply may well contain `<|endoftext|>`; the provider reads it as text, and so does the estimate
// (by default the tokenizer throws on it).
const AS_TEXT = { disallowedSpecial: new Set<string>() }
let loading: Promise<void> | undefined

/** Starts loading the tokenizer (once); resolves when it is there, or when it failed to load (then length / 4). */
export function loadTokenizer(): Promise<void> {
  loading ??= import('gpt-tokenizer').then(
    (m) => {
      countTokens = m.countTokens
    },
    () => {},
  )
  return loading
}

export function estimateText(text: string): number {
  if (text === '') return 0
  if (countTokens === undefined) {
    void loadTokenizer()
    return Math.ceil(text.length / CHARS_PER_TOKEN)
  }
  if (text.length > MAX_TOKENIZED_CHARS)
    return (
      tokenize(countTokens, text.slice(0, MAX_TOKENIZED_CHARS)) +
      Math.ceil((text.length - MAX_TOKENIZED_CHARS) / CHARS_PER_TOKEN)
    )
  return tokenize(countTokens, text)
}

// BPE merges cost the square of one unbroken word's length (32,000 letters in a row take seconds): a run this long
// is counted in slices, so whatever an agent sends, an estimate never stalls the event loop. A slice boundary moves
// the count by a token at most, and no slice counts as more tokens than its bytes.
const LONG_RUN = /\S{256,}/
const LONG_RUNS = /(\S{256,})/
const SLICE = 128

function tokenize(count: NonNullable<typeof countTokens>, text: string): number {
  if (!LONG_RUN.test(text)) return countPiece(count, text)
  let total = 0
  // split() with a capturing group keeps the long runs, at the odd indexes.
  const pieces = text.split(LONG_RUNS)
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i] as string
    if (i % 2 === 0) {
      if (piece !== '') total += countPiece(count, piece)
      continue
    }
    for (let k = 0; k < piece.length; k += SLICE) total += countPiece(count, piece.slice(k, k + SLICE))
  }
  return total
}

function countPiece(count: NonNullable<typeof countTokens>, text: string): number {
  try {
    return count(text)
  } catch {
    // A special token's spelling in the text: counted as the plain text it is (rare, so the slower call).
    return count(text, AS_TEXT)
  }
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

function estimatePart(text: string): number {
  if (text.length < CACHE_MIN_CHARS || countTokens === undefined || text.length > CACHE_MAX_CHARS / 4)
    return estimateText(text)
  const hit = counted.get(text)
  if (hit !== undefined) {
    counted.delete(text)
    counted.set(text, hit)
    return hit
  }
  const n = estimateText(text)
  counted.set(text, n)
  countedChars += text.length
  for (const old of counted.keys()) {
    if (countedChars <= CACHE_MAX_CHARS) break
    counted.delete(old)
    countedChars -= old.length
  }
  return n
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
  for (const part of parts) tokens += estimatePart(part)
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
