/**
 * A strict JSON (RFC 8259) parser for inputs that drive trust decisions:
 * JWT headers and claims, JWKS documents, SPIFFE bundles and bundle maps.
 *
 * `JSON.parse` is wrong for these in three ways. It keeps the last of two
 * duplicate keys, so two parsers can read one document differently (the
 * SPIFFE bundle map spec, §6.3, requires rejecting duplicate trust domains).
 * It rounds integers above 2^53, and `spiffe_sequence` is a 64-bit counter.
 * And it has no size or depth limit. This scanner rejects duplicates
 * anywhere, returns chosen integer members as exact `bigint`s, caps size and
 * nesting, and refuses `__proto__` keys so a parsed object can never reach a
 * prototype through a later spread or `Object.assign`.
 */
import { SpiffeError, type SpiffeErrorCode } from '../errors.ts'

export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | JsonObject
export interface JsonObject {
  [key: string]: JsonValue
}

/** Stable reasons carried by the caller's error code. */
export type StrictJsonReason = 'TOO_LARGE' | 'TOO_DEEP' | 'MALFORMED' | 'DUPLICATE_KEY' | 'FORBIDDEN_KEY'

export interface StrictJsonOptions {
  /** The code thrown on failure, so each caller reports in its own domain. */
  errorCode: SpiffeErrorCode
  /** Names the input in error messages, e.g. `JWT header`. */
  what: string
  /** Largest accepted input in bytes (UTF-8). Default 1 MiB. */
  maxBytes?: number
  /** Deepest accepted nesting of arrays and objects. Default 32. */
  maxDepth?: number
  /** Object members whose integer values are returned as exact `bigint`s. */
  bigIntMembers?: ReadonlySet<string>
}

export const DEFAULT_MAX_JSON_BYTES = 1024 * 1024
export const DEFAULT_MAX_JSON_DEPTH = 32
/** Longest integer returned as a bigint: far beyond 64 bits (20 digits). */
export const MAX_BIGINT_DIGITS = 64

// `fatal` refuses invalid UTF-8 instead of silently substituting U+FFFD (a
// parser differential); `ignoreBOM` keeps a BOM in the text so the grammar
// rejects it, as RFC 8259 §8.1 forbids one on the wire.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const NO_BIGINTS: ReadonlySet<string> = new Set()

/** Parses `input` as one strict JSON value; throws SpiffeError(options.errorCode) with a StrictJsonReason. */
export function parseStrictJson(input: string | Uint8Array, options: StrictJsonOptions): JsonValue {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_JSON_BYTES
  let text: string
  if (typeof input === 'string') {
    // A char is at least one UTF-8 byte, so only count bytes when it could matter.
    if (input.length > maxBytes || (input.length * 3 > maxBytes && Buffer.byteLength(input) > maxBytes)) {
      throw tooLarge(options, maxBytes)
    }
    if (!input.isWellFormed()) {
      throw fail(options, 'MALFORMED', `${options.what} has an unpaired UTF-16 surrogate`)
    }
    text = input
  } else {
    if (input.byteLength > maxBytes) throw tooLarge(options, maxBytes)
    try {
      text = utf8.decode(input)
    } catch (cause) {
      throw new SpiffeError(options.errorCode, `${options.what} is not valid UTF-8`, {
        reason: 'MALFORMED',
        cause,
      })
    }
  }
  const scanner = new Scanner(text, options)
  scanner.skipWhitespace()
  const value = scanner.value(0)
  scanner.skipWhitespace()
  if (scanner.pos !== text.length) scanner.malformed('unexpected data after the JSON value')
  return value
}

/** True for a JSON object (not an array or null). */
export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function fail(options: StrictJsonOptions, reason: StrictJsonReason, message: string): SpiffeError {
  return new SpiffeError(options.errorCode, message, { reason })
}

function tooLarge(options: StrictJsonOptions, maxBytes: number): SpiffeError {
  return fail(options, 'TOO_LARGE', `${options.what} is larger than ${maxBytes} bytes`)
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const MINUS = 0x2d
const PLUS = 0x2b
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  return -1
}

class Scanner {
  pos = 0
  readonly #text: string
  readonly #options: StrictJsonOptions
  readonly #maxDepth: number
  readonly #bigIntMembers: ReadonlySet<string>

  constructor(text: string, options: StrictJsonOptions) {
    this.#text = text
    this.#options = options
    this.#maxDepth = options.maxDepth ?? DEFAULT_MAX_JSON_DEPTH
    this.#bigIntMembers = options.bigIntMembers ?? NO_BIGINTS
  }

  malformed(what: string): never {
    throw fail(
      this.#options,
      'MALFORMED',
      `${this.#options.what} is not valid JSON: ${what} at offset ${this.pos}`,
    )
  }

  skipWhitespace(): void {
    const text = this.#text
    let pos = this.pos
    for (; pos < text.length; pos++) {
      const c = text.charCodeAt(pos)
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break
    }
    this.pos = pos
  }

  value(depth: number, bigInt = false): JsonValue {
    const c = this.#text.charCodeAt(this.pos)
    switch (c) {
      case 0x7b:
        return this.#object(depth + 1)
      case 0x5b:
        return this.#array(depth + 1)
      case QUOTE:
        return this.#string()
      case 0x74:
        return this.#literal('true', true)
      case 0x66:
        return this.#literal('false', false)
      case 0x6e:
        return this.#literal('null', null)
      default:
        if (c === MINUS || isDigit(c)) return this.#number(bigInt)
        return this.malformed(Number.isNaN(c) ? 'unexpected end of input' : 'unexpected character')
    }
  }

  #enter(depth: number): void {
    if (depth > this.#maxDepth) {
      throw fail(
        this.#options,
        'TOO_DEEP',
        `${this.#options.what} nests deeper than ${this.#maxDepth} levels at offset ${this.pos}`,
      )
    }
  }

  #object(depth: number): JsonObject {
    this.#enter(depth)
    const text = this.#text
    this.pos++
    const obj: JsonObject = {}
    this.skipWhitespace()
    if (text.charCodeAt(this.pos) === 0x7d) {
      this.pos++
      return obj
    }
    for (;;) {
      if (text.charCodeAt(this.pos) !== QUOTE) this.malformed('expected a member name')
      const keyOffset = this.pos
      const key = this.#string()
      if (key === '__proto__') {
        throw fail(
          this.#options,
          'FORBIDDEN_KEY',
          `${this.#options.what} has a "__proto__" member at offset ${keyOffset}`,
        )
      }
      if (Object.hasOwn(obj, key)) {
        throw fail(
          this.#options,
          'DUPLICATE_KEY',
          `${this.#options.what} has a duplicate member ${JSON.stringify(truncate(key))} at offset ${keyOffset}`,
        )
      }
      this.skipWhitespace()
      if (text.charCodeAt(this.pos) !== COLON) this.malformed('expected ":"')
      this.pos++
      this.skipWhitespace()
      obj[key] = this.value(depth, this.#bigIntMembers.has(key))
      this.skipWhitespace()
      const c = text.charCodeAt(this.pos)
      this.pos++
      if (c === 0x7d) return obj
      if (c !== COMMA) {
        this.pos--
        this.malformed('expected "," or "}"')
      }
      this.skipWhitespace()
    }
  }

  #array(depth: number): JsonValue[] {
    this.#enter(depth)
    const text = this.#text
    this.pos++
    const arr: JsonValue[] = []
    this.skipWhitespace()
    if (text.charCodeAt(this.pos) === 0x5d) {
      this.pos++
      return arr
    }
    for (;;) {
      arr.push(this.value(depth))
      this.skipWhitespace()
      const c = text.charCodeAt(this.pos)
      this.pos++
      if (c === 0x5d) return arr
      if (c !== COMMA) {
        this.pos--
        this.malformed('expected "," or "]"')
      }
      this.skipWhitespace()
    }
  }

  #literal<T extends JsonValue>(word: string, value: T): T {
    if (!this.#text.startsWith(word, this.pos)) this.malformed('unexpected character')
    this.pos += word.length
    return value
  }

  #number(bigInt: boolean): number | bigint {
    const text = this.#text
    const start = this.pos
    let pos = start
    if (text.charCodeAt(pos) === MINUS) pos++
    const intStart = pos
    while (isDigit(text.charCodeAt(pos))) pos++
    if (pos === intStart) return this.#badNumber(pos)
    if (text.charCodeAt(intStart) === ZERO && pos - intStart > 1) return this.#badNumber(intStart + 1)
    let integer = true
    if (text.charCodeAt(pos) === DOT) {
      integer = false
      pos++
      const fracStart = pos
      while (isDigit(text.charCodeAt(pos))) pos++
      if (pos === fracStart) return this.#badNumber(pos)
    }
    const e = text.charCodeAt(pos)
    if (e === 0x65 || e === 0x45) {
      integer = false
      pos++
      const sign = text.charCodeAt(pos)
      if (sign === PLUS || sign === MINUS) pos++
      const expStart = pos
      while (isDigit(text.charCodeAt(pos))) pos++
      if (pos === expStart) return this.#badNumber(pos)
    }
    this.pos = pos
    const literal = text.slice(start, pos)
    if (bigInt && integer) {
      // BigInt parsing is superlinear; nothing asked for as a bigint is that long.
      if (literal.length > MAX_BIGINT_DIGITS) {
        this.pos = start
        throw fail(
          this.#options,
          'TOO_LARGE',
          `${this.#options.what} has an integer of ${literal.length} digits at offset ${start}`,
        )
      }
      return BigInt(literal)
    }
    const n = Number(literal)
    if (!Number.isFinite(n)) {
      this.pos = start
      this.malformed('number out of range')
    }
    return n
  }

  #badNumber(pos: number): never {
    this.pos = pos
    return this.malformed('malformed number')
  }

  #string(): string {
    const text = this.#text
    let pos = this.pos + 1
    let out = ''
    let chunkStart = pos
    for (;;) {
      const c = text.charCodeAt(pos)
      if (c === QUOTE) {
        out += text.slice(chunkStart, pos)
        this.pos = pos + 1
        return out
      }
      if (Number.isNaN(c)) {
        this.pos = pos
        this.malformed('unterminated string')
      }
      if (c < 0x20) {
        this.pos = pos
        this.malformed('unescaped control character in a string')
      }
      if (c !== BACKSLASH) {
        pos++
        continue
      }
      out += text.slice(chunkStart, pos)
      const esc = text.charCodeAt(pos + 1)
      pos += 2
      switch (esc) {
        case QUOTE:
          out += '"'
          break
        case BACKSLASH:
          out += '\\'
          break
        case 0x2f:
          out += '/'
          break
        case 0x62:
          out += '\b'
          break
        case 0x66:
          out += '\f'
          break
        case 0x6e:
          out += '\n'
          break
        case 0x72:
          out += '\r'
          break
        case 0x74:
          out += '\t'
          break
        case 0x75: {
          const unit = this.#hex4(pos)
          pos += 4
          if (unit >= 0xd800 && unit <= 0xdbff) {
            // A high surrogate must be followed by an escaped low one: lone
            // surrogates decode differently across parsers (I-JSON, RFC 7493 §2.1).
            const low =
              text.charCodeAt(pos) === BACKSLASH && text.charCodeAt(pos + 1) === 0x75
                ? this.#hex4(pos + 2)
                : -1
            if (low < 0xdc00 || low > 0xdfff) {
              this.pos = pos
              this.malformed('unpaired surrogate escape')
            }
            out += String.fromCharCode(unit, low)
            pos += 6
          } else if (unit >= 0xdc00 && unit <= 0xdfff) {
            this.pos = pos
            this.malformed('unpaired surrogate escape')
          } else {
            out += String.fromCharCode(unit)
          }
          break
        }
        default:
          this.pos = pos - 1
          this.malformed('invalid escape')
      }
      chunkStart = pos
    }
  }

  #hex4(pos: number): number {
    const text = this.#text
    let v = 0
    for (let i = 0; i < 4; i++) {
      const h = hexValue(text.charCodeAt(pos + i))
      if (h < 0) {
        this.pos = pos + i
        this.malformed('invalid \\u escape')
      }
      v = (v << 4) | h
    }
    return v
  }
}

function truncate(s: string): string {
  return s.length > 64 ? `${s.slice(0, 61)}...` : s
}
