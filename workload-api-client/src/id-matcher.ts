/**
 * A small closed vocabulary of SPIFFE ID matchers. Every matcher compares
 * parsed IDs: exact string equality, trust domain membership, or whole path
 * segments. Nothing here ever does a plain `startsWith` on ID strings, so
 * `spiffe://td/agents` never matches `spiffe://td/agents-admin`.
 */
import { SpiffeError } from './errors.ts'
import { SpiffeId, TrustDomain } from './spiffe-id.ts'

export interface IdMatcher {
  (id: SpiffeId): boolean
  /** A stable, human-readable description, for logs and error messages. */
  readonly description: string
}

function named(description: string, fn: (id: SpiffeId) => boolean): IdMatcher {
  return Object.assign(fn, { description }) as IdMatcher
}

function toId(id: SpiffeId | string): SpiffeId {
  return typeof id === 'string' ? SpiffeId.parse(id) : id
}

/** Matches every ID. */
export function matchAny(): IdMatcher {
  return named('any', function matchAnyId() {
    return true
  })
}

/** Matches exactly one ID (path comparison is case-sensitive). */
export function matchId(expected: SpiffeId | string): IdMatcher {
  const want = toId(expected).toString()
  return named(`id ${want}`, function matchExactId(id) {
    return id.toString() === want
  })
}

/** Matches any ID of a set. */
export function matchOneOf(...expected: Array<SpiffeId | string>): IdMatcher {
  const set = new Set(expected.map((e) => toId(e).toString()))
  return named(`one of [${[...set].join(', ')}]`, function matchIdSet(id) {
    return set.has(id.toString())
  })
}

/** Matches every ID in a trust domain. */
export function matchMemberOf(trustDomain: TrustDomain | string): IdMatcher {
  const td = typeof trustDomain === 'string' ? TrustDomain.parse(trustDomain) : trustDomain
  const name = td.name
  return named(`member of ${name}`, function matchTrustDomain(id) {
    return id.trustDomain.name === name
  })
}

/**
 * Matches `prefix` itself and every ID below it at a segment boundary:
 * `spiffe://td/agents` matches `.../agents` and `.../agents/x/y`, never
 * `.../agents-admin`. The root prefix `spiffe://td` matches the whole domain.
 */
export function matchPathPrefix(prefix: SpiffeId | string): IdMatcher {
  const p = toId(prefix)
  const tdName = p.trustDomain.name
  const path = p.path
  return named(`path prefix ${p.toString()}`, function matchIdPrefix(id) {
    if (id.trustDomain.name !== tdName) return false
    const other = id.path
    if (path === '') return true
    return other === path || (other.startsWith(path) && other.charCodeAt(path.length) === 0x2f)
  })
}

/**
 * Matches an ID that any of `matchers` matches: "a workload under
 * /ns/agents, or anything from partner.example". The description lists each
 * matcher's own, so a refusal says everything that would have been allowed.
 * At least one matcher is required: an empty union would refuse everyone,
 * which is never what a caller listing what to allow means.
 */
export function matchAnyOf(...matchers: IdMatcher[]): IdMatcher {
  if (matchers.length === 0) {
    throw new SpiffeError('SPIFFE_MATCHER_INVALID', 'matchAnyOf needs at least one matcher')
  }
  for (const m of matchers) {
    if (typeof m !== 'function') {
      throw new SpiffeError('SPIFFE_MATCHER_INVALID', `matchAnyOf takes matchers, got ${typeof m}`)
    }
  }
  if (matchers.length === 1) return matchers[0] as IdMatcher
  const list = [...matchers]
  const description = `any of (${list.map((m) => m.description || m.name || 'a matcher').join('; ')})`
  return named(description, function matchAnyOfMatchers(id) {
    for (const m of list) if (m(id)) return true
    return false
  })
}

type Segment = { kind: 'literal'; value: string } | { kind: 'one' } | { kind: 'any' }

/**
 * Matches a pattern: `spiffe://td/agents/*` (`*` = exactly one segment) or
 * `spiffe://td/agents/**` (`**` = zero or more segments). Wildcards stand for
 * whole segments only, and the trust domain is always literal.
 */
export function matchPattern(pattern: string): IdMatcher {
  const { tdName, segments } = compilePattern(pattern)
  if (!segments.some((s) => s.kind !== 'literal')) return matchId(pattern)
  return named(`pattern ${pattern}`, function matchIdPattern(id) {
    if (id.trustDomain.name !== tdName) return false
    return matchSegments(segments, id.segments)
  })
}

function compilePattern(pattern: string): { tdName: string; segments: Segment[] } {
  const bad = (msg: string) => new SpiffeError('SPIFFE_MATCHER_INVALID', `pattern "${pattern}": ${msg}`)
  if (typeof pattern !== 'string' || !pattern.startsWith('spiffe://'))
    throw bad('must start with "spiffe://"')
  const rest = pattern.slice('spiffe://'.length)
  const slash = rest.indexOf('/')
  const tdPart = slash === -1 ? rest : rest.slice(0, slash)
  const td = TrustDomain.tryParse(tdPart)
  if (td === undefined || tdPart.includes('*')) throw bad('the trust domain must be a literal, valid name')
  const raw = slash === -1 ? [] : rest.slice(slash + 1).split('/')
  const segments: Segment[] = []
  const literal: string[] = []
  for (const s of raw) {
    if (s === '*') segments.push({ kind: 'one' })
    else if (s === '**') {
      if (segments.at(-1)?.kind === 'any') throw bad('"**/**" is redundant')
      segments.push({ kind: 'any' })
    } else if (s.includes('*')) throw bad(`"${s}": a wildcard must be a whole segment`)
    else {
      segments.push({ kind: 'literal', value: s })
      literal.push(s)
    }
  }
  // Validate the literal segments with the real path grammar.
  try {
    SpiffeId.fromSegments(td, ...literal)
  } catch (err) {
    throw new SpiffeError('SPIFFE_MATCHER_INVALID', `pattern "${pattern}": ${(err as Error).message}`, {
      cause: err,
    })
  }
  if (raw.some((s) => s === '')) throw bad('empty segment')
  return { tdName: td.name, segments }
}

// Glob matching with a single backtrack point, the last `**` seen: when a later element fails, that `**`
// takes one more segment and matching resumes after it. Earlier `**` never need revisiting, so the cost is
// at most pattern length × segments, where recursion over every split costs segments^(number of `**`), and
// the segments come from the peer (up to about a thousand in a 2048-byte ID).
function matchSegments(pat: Segment[], segs: string[]): boolean {
  let pi = 0
  let si = 0
  let starPi = -1
  let starSi = 0
  while (si < segs.length) {
    const p = pat[pi]
    if (p?.kind === 'any') {
      starPi = pi
      starSi = si
      pi++
    } else if (p !== undefined && (p.kind === 'one' || p.value === segs[si])) {
      pi++
      si++
    } else if (starPi === -1) {
      return false
    } else {
      pi = starPi + 1
      starSi++
      si = starSi
    }
  }
  while (pat[pi]?.kind === 'any') pi++
  return pi === pat.length
}
