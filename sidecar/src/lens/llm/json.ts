/**
 * A strict reader for the JSON bodies the LLM lens decides on. `JSON.parse`
 * alone is not enough for a proxy: it keeps the last of duplicate keys (an
 * upstream may keep the first, so `{"model":"a","model":"b"}` could be
 * decided as one model and served as another), it turns `__proto__` into an
 * own key, and its cost grows steeply with nesting. One linear pass over the
 * bytes first refuses nesting past a depth cap, duplicate keys in any object
 * (compared after unescaping, so `"mod\u0065l"` is `"model"`), `__proto__`
 * keys, and `constructor` keys whose value holds a `prototype` (the pattern
 * secure-json-parse refuses); `JSON.parse` then checks the grammar. Bytes
 * that are not UTF-8 are refused first (RFC 8259 §8.1 requires it): decoding
 * would turn them into U+FFFD here, while a provider may read them otherwise,
 * so a model name could be decided as one string and served as another. The
 * caller reads fields from the result and forwards the bytes it was given,
 * never a re-serialisation.
 */

import { isUtf8 } from 'node:buffer'

export type JsonProblem = 'NOT_JSON' | 'TOO_DEEP' | 'DUPLICATE_KEY' | 'FORBIDDEN_KEY' | 'NOT_AN_OBJECT'

export class JsonRejected extends Error {
  readonly problem: JsonProblem
  constructor(problem: JsonProblem, message: string) {
    super(message)
    this.problem = problem
  }
}

export const DEFAULT_MAX_DEPTH = 64

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const COLON = 0x3a

interface Frame {
  readonly object: boolean
  /** Keys seen so far in this object. */
  keys: Set<string> | undefined
  /** Object only: the next string is a key. */
  expectKey: boolean
  /** The key whose value opened this container (to spot `constructor.prototype`). */
  readonly key: string | undefined
}

/**
 * Parses `body` as one JSON object under the rules above. Throws JsonRejected with the problem; the message
 * names the offending key where there is one (keys are the client's field names, never values).
 */
export function readJsonObject(body: Buffer, maxDepth = DEFAULT_MAX_DEPTH): Record<string, unknown> {
  if (!isUtf8(body)) throw new JsonRejected('NOT_JSON', 'the body is not JSON: it is not valid UTF-8')
  scan(body, maxDepth)
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new JsonRejected('NOT_JSON', `the body is not JSON: ${(err as Error).message}`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new JsonRejected('NOT_AN_OBJECT', 'the body is JSON but not an object')
  return parsed as Record<string, unknown>
}

/**
 * The structural pass. It trusts JSON.parse for the grammar, so on input that is not JSON it only has to stop
 * safely; what it reports on valid JSON must be exact.
 */
function scan(b: Buffer, maxDepth: number): void {
  const stack: Frame[] = []
  // The key that the next value belongs to, in the innermost object.
  let pendingKey: string | undefined
  let i = 0
  const n = b.length
  while (i < n) {
    const c = b[i] as number
    if (c === QUOTE) {
      const end = stringEnd(b, i)
      if (end === -1) throw new JsonRejected('NOT_JSON', 'the body is not JSON: an unterminated string')
      const top = stack.at(-1)
      if (top?.object === true && top.expectKey) {
        const key = decodeKey(b, i, end)
        checkKey(key, top)
        top.expectKey = false
        pendingKey = key
      }
      i = end + 1
      continue
    }
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (stack.length >= maxDepth)
        throw new JsonRejected('TOO_DEEP', `the body nests deeper than ${maxDepth} levels`)
      const parent = stack.at(-1)
      const key = parent?.object === true ? pendingKey : undefined
      stack.push({ object: c === OPEN_OBJECT, keys: undefined, expectKey: c === OPEN_OBJECT, key })
      pendingKey = undefined
      i++
      continue
    }
    if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      stack.pop()
      pendingKey = undefined
      i++
      continue
    }
    if (c === 0x2c /* , */) {
      const top = stack.at(-1)
      if (top?.object === true) top.expectKey = true
      pendingKey = undefined
      i++
      continue
    }
    if (c === COLON) {
      i++
      continue
    }
    i++
  }
}

/** The index of the quote that closes the string opened at `start`, or -1. */
function stringEnd(b: Buffer, start: number): number {
  let from = start + 1
  for (;;) {
    const q = b.indexOf(QUOTE, from)
    if (q === -1) return -1
    // A quote preceded by an odd run of backslashes is escaped.
    let k = q - 1
    while (k > start && b[k] === BACKSLASH) k--
    if ((q - 1 - k) % 2 === 0) return q
    from = q + 1
  }
}

function decodeKey(b: Buffer, start: number, end: number): string {
  const hasEscape = b.indexOf(BACKSLASH, start + 1) !== -1 && b.indexOf(BACKSLASH, start + 1) < end
  if (!hasEscape) return b.toString('utf8', start + 1, end)
  try {
    return JSON.parse(b.toString('utf8', start, end + 1)) as string
  } catch {
    throw new JsonRejected('NOT_JSON', 'the body is not JSON: a key has an invalid escape')
  }
}

function checkKey(key: string, frame: Frame): void {
  if (key === '__proto__') throw new JsonRejected('FORBIDDEN_KEY', 'the body has a "__proto__" key')
  if (key === 'prototype' && frame.key === 'constructor')
    throw new JsonRejected('FORBIDDEN_KEY', 'the body has a "constructor" key holding a "prototype"')
  frame.keys ??= new Set()
  if (frame.keys.has(key))
    throw new JsonRejected('DUPLICATE_KEY', `the body has the key "${clip(key)}" twice`)
  frame.keys.add(key)
}

function clip(key: string): string {
  // A key is the client's own text: keep it short and printable in the message.
  const printable = key.replace(/[^\x20-\x7e]/g, '?')
  return printable.length > 64 ? `${printable.slice(0, 64)}…` : printable
}
