/**
 * SPIFFE IDs and trust domains, parsed to the letter of the SPIFFE ID spec
 * (SPIFFE-ID.md §2). A byte scanner, never `new URL()`: URL parsing would
 * resolve `/a/../admin`, lowercase the scheme and accept ports and userinfo.
 *
 * Instances can only hold valid values; the constructors are private and the
 * only ways in are the parsers below. The original string is the canonical
 * form and comparisons are exact string equality.
 */
import { SpiffeError } from './errors.ts'

export const SPIFFE_SCHEME_PREFIX = 'spiffe://'
/** SPIFFE-ID.md §2.3: implementations must accept IDs up to 2048 bytes. */
export const MAX_ID_LENGTH = 2048
/** SPIFFE-ID.md §2.1: a trust domain name is at most 255 bytes. */
export const MAX_TRUST_DOMAIN_LENGTH = 255

/** Stable reasons carried by SPIFFE_ID_INVALID. */
export type SpiffeIdReason =
  | 'EMPTY'
  | 'BAD_SCHEME'
  | 'BAD_TRUST_DOMAIN_CHAR'
  | 'MISSING_TRUST_DOMAIN'
  | 'BAD_PATH_CHAR'
  | 'EMPTY_SEGMENT'
  | 'DOT_SEGMENT'
  | 'TRAILING_SLASH'
  | 'NO_LEADING_SLASH'
  | 'TOO_LONG'

// Lookup tables indexed by char code; anything >= 128 is outside both sets.
const TD_CHAR = new Uint8Array(128)
const PATH_CHAR = new Uint8Array(128)
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c)
  const lowerOrDigit = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
  const punct = ch === '.' || ch === '-' || ch === '_'
  TD_CHAR[c] = lowerOrDigit || punct ? 1 : 0
  PATH_CHAR[c] = lowerOrDigit || punct || (ch >= 'A' && ch <= 'Z') ? 1 : 0
}
const SLASH = 0x2f
const DOT = 0x2e

function invalid(reason: SpiffeIdReason, message: string): SpiffeError {
  return new SpiffeError('SPIFFE_ID_INVALID', message, { reason })
}

/** Returns the failure reason for `td` as a trust domain name, or undefined when valid. */
function checkTrustDomainName(td: string, input: string): SpiffeError | undefined {
  if (td.length === 0) return invalid('MISSING_TRUST_DOMAIN', `trust domain is missing in ${quote(input)}`)
  if (td.length > MAX_TRUST_DOMAIN_LENGTH) {
    return invalid(
      'TOO_LONG',
      `trust domain is ${td.length} bytes, over the ${MAX_TRUST_DOMAIN_LENGTH}-byte limit`,
    )
  }
  for (let i = 0; i < td.length; i++) {
    const c = td.charCodeAt(i)
    if (c >= 128 || TD_CHAR[c] === 0) {
      return invalid(
        'BAD_TRUST_DOMAIN_CHAR',
        `trust domain ${quote(td)} has character ${JSON.stringify(td[i])} at offset ${i}; only a-z, 0-9, ".", "-" and "_" are allowed`,
      )
    }
  }
  return undefined
}

/** Validates a path ("" or "/seg/seg"); returns the failure or undefined. */
function checkPath(path: string, input: string): SpiffeError | undefined {
  const n = path.length
  if (n === 0) return undefined
  if (path.charCodeAt(0) !== SLASH)
    return invalid('NO_LEADING_SLASH', `path ${quote(path)} must start with "/"`)
  let segStart = 1
  for (let i = 1; i <= n; i++) {
    const c = i === n ? SLASH : path.charCodeAt(i)
    if (c === SLASH) {
      const len = i - segStart
      if (len === 0) {
        return i === n
          ? invalid('TRAILING_SLASH', `${quote(input)} ends with "/"`)
          : invalid('EMPTY_SEGMENT', `${quote(input)} has an empty path segment ("//") at path offset ${i}`)
      }
      if (
        path.charCodeAt(segStart) === DOT &&
        (len === 1 || (len === 2 && path.charCodeAt(segStart + 1) === DOT))
      ) {
        return invalid(
          'DOT_SEGMENT',
          `${quote(input)} has a "." or ".." path segment at path offset ${segStart}`,
        )
      }
      segStart = i + 1
    } else if (c >= 128 || PATH_CHAR[c] === 0) {
      return invalid(
        'BAD_PATH_CHAR',
        `${quote(input)} has character ${JSON.stringify(path[i])} at path offset ${i}; only a-z, A-Z, 0-9, ".", "-" and "_" are allowed`,
      )
    }
  }
  return undefined
}

// Parsing the same trust domain over and over is the common case (every peer
// of a mesh shares a handful), so trust domains are interned. The cache is
// bounded so a flood of distinct names cannot grow it without limit.
const TD_CACHE_LIMIT = 1024
const tdCache = new Map<string, TrustDomain>()

export class TrustDomain {
  /** The bare name, e.g. `example.org`. */
  readonly name: string
  readonly #idString: string

  private constructor(name: string) {
    this.name = name
    this.#idString = SPIFFE_SCHEME_PREFIX + name
  }

  /** @internal for the parser: `name` is already validated. */
  static fromValidatedName(name: string): TrustDomain {
    let td = tdCache.get(name)
    if (td === undefined) {
      td = new TrustDomain(name)
      if (tdCache.size >= TD_CACHE_LIMIT) tdCache.clear()
      tdCache.set(name, td)
    }
    return td
  }

  /**
   * Parses a trust domain from its bare name (`example.org`) or its ID
   * (`spiffe://example.org`), as Workload API map keys may be either.
   * An ID with a path is rejected: it names a workload, not a trust domain.
   */
  static parse(input: string): TrustDomain {
    const result = TrustDomain.#parse(input)
    if (result instanceof SpiffeError) throw result
    return result
  }

  static tryParse(input: string): TrustDomain | undefined {
    const result = TrustDomain.#parse(input)
    return result instanceof SpiffeError ? undefined : result
  }

  static #parse(input: string): TrustDomain | SpiffeError {
    if (typeof input !== 'string' || input.length === 0) return invalid('EMPTY', 'trust domain is empty')
    if (input.includes(':/')) {
      const id = SpiffeId.tryParseResult(input)
      if (id instanceof SpiffeError) return id
      if (id.path !== '') {
        return invalid(
          'BAD_TRUST_DOMAIN_CHAR',
          `${quote(input)} is a workload ID, not a trust domain (it has a path)`,
        )
      }
      return id.trustDomain
    }
    const err = checkTrustDomainName(input, input)
    return err ?? TrustDomain.fromValidatedName(input)
  }

  /** The trust domain's own SPIFFE ID, `spiffe://<name>`, as a string. */
  get idString(): string {
    return this.#idString
  }

  /** The trust domain's own SPIFFE ID (the ID of its signing authorities). */
  id(): SpiffeId {
    return SpiffeId.fromValidated(this, '', this.#idString)
  }

  equals(other: TrustDomain | undefined): boolean {
    return other !== undefined && other.name === this.name
  }

  toString(): string {
    return this.name
  }

  toJSON(): string {
    return this.name
  }
}

export class SpiffeId {
  readonly trustDomain: TrustDomain
  /** `""` for the trust domain's own ID, otherwise `/seg/...`. Case-sensitive. */
  readonly path: string
  readonly #string: string

  private constructor(trustDomain: TrustDomain, path: string, str: string) {
    this.trustDomain = trustDomain
    this.path = path
    this.#string = str
  }

  /** @internal for callers that already hold validated parts. */
  static fromValidated(trustDomain: TrustDomain, path: string, str: string): SpiffeId {
    return new SpiffeId(trustDomain, path, str)
  }

  /** Parses a SPIFFE ID; throws SPIFFE_ID_INVALID with a `reason`. */
  static parse(input: string): SpiffeId {
    const result = SpiffeId.tryParseResult(input)
    if (result instanceof SpiffeError) throw result
    return result
  }

  /** Parses a SPIFFE ID, or returns undefined when it is invalid. */
  static tryParse(input: string): SpiffeId | undefined {
    const result = SpiffeId.tryParseResult(input)
    return result instanceof SpiffeError ? undefined : result
  }

  /** Parses without throwing: the ID, or the error that parse() would throw. */
  static tryParseResult(input: string): SpiffeId | SpiffeError {
    if (typeof input !== 'string' || input.length === 0) return invalid('EMPTY', 'SPIFFE ID is empty')
    if (input.length > MAX_ID_LENGTH) {
      return invalid('TOO_LONG', `SPIFFE ID is ${input.length} bytes, over the ${MAX_ID_LENGTH}-byte limit`)
    }
    if (!input.startsWith(SPIFFE_SCHEME_PREFIX)) {
      return invalid('BAD_SCHEME', `${quote(input)} does not start with "spiffe://"`)
    }
    const tdStart = SPIFFE_SCHEME_PREFIX.length
    let tdEnd = input.indexOf('/', tdStart)
    if (tdEnd === -1) tdEnd = input.length
    const tdName = input.slice(tdStart, tdEnd)
    const tdErr = checkTrustDomainName(tdName, input)
    if (tdErr !== undefined) return tdErr
    const path = input.slice(tdEnd)
    const pathErr = checkPath(path, input)
    if (pathErr !== undefined) return pathErr
    return new SpiffeId(TrustDomain.fromValidatedName(tdName), path, input)
  }

  /** Builds an ID from a trust domain and a path (`""` or `/a/b`), validating the path. */
  static fromPath(trustDomain: TrustDomain, path: string): SpiffeId {
    const str = trustDomain.idString + path
    if (str.length > MAX_ID_LENGTH) {
      throw invalid('TOO_LONG', `SPIFFE ID is ${str.length} bytes, over the ${MAX_ID_LENGTH}-byte limit`)
    }
    const err = checkPath(path, str)
    if (err !== undefined) throw err
    return new SpiffeId(trustDomain, path, str)
  }

  /** Builds an ID from path segments, each validated as one segment. */
  static fromSegments(trustDomain: TrustDomain, ...segments: string[]): SpiffeId {
    for (const s of segments) {
      if (s.includes('/')) throw invalid('BAD_PATH_CHAR', `segment ${quote(s)} contains "/"`)
    }
    return SpiffeId.fromPath(trustDomain, segments.length === 0 ? '' : `/${segments.join('/')}`)
  }

  /** The path split into segments (`[]` for the trust domain's own ID). */
  get segments(): string[] {
    return this.path === '' ? [] : this.path.slice(1).split('/')
  }

  /** True for `spiffe://td` itself, which names signing authorities, never workloads. */
  get isRoot(): boolean {
    return this.path === ''
  }

  memberOf(trustDomain: TrustDomain): boolean {
    return this.trustDomain.name === trustDomain.name
  }

  equals(other: SpiffeId | undefined): boolean {
    return other !== undefined && other.#string === this.#string
  }

  toString(): string {
    return this.#string
  }

  toJSON(): string {
    return this.#string
  }
}

// Refused input is often a peer's URI SAN or a token's `sub`, and messages end up in logs: quote it with
// control characters escaped, and cut it short so a 2 KiB ID does not become a 2 KiB log line.
function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s)
}
