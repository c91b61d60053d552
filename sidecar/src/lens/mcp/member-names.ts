/**
 * Member names another JSON parser reads as one. Go's encoding/json matches
 * names case-insensitively and folds ſ (U+017F) to s and K (U+212A) to k, and
 * a later Go parser took a name with trailing NULs for the name itself; the
 * last such member wins (GHSA-wvj2-96wp-fq3f, GHSA-q382-vc8q-7jhj). The lens
 * decides on the member JSON.parse reads, so an object holding two names that
 * fold together could have such a server act on the other one: it is refused.
 */

/** Objects deeper than this are not looked into (a policy condition reads no deeper). */
const MAX_DEPTH = 64

function fold(name: string): string {
  let n = name
  while (n.endsWith('\u0000')) n = n.slice(0, -1)
  // toLowerCase also turns K (U+212A) into k; ſ is lower case already.
  return n.toLowerCase().replaceAll('\u017f', 's')
}

/** Only a name with upper case, ſ or a trailing NUL folds onto another (plain names are distinct already). */
function mayFold(name: string): boolean {
  return name !== name.toLowerCase() || name.includes('\u017f') || name.endsWith('\u0000')
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/** Two names of one object that fold together, or undefined. */
export function clashIn(obj: Record<string, unknown>): [string, string] | undefined {
  let seen: Map<string, string> | undefined
  for (const name of Object.keys(obj)) {
    if (seen === undefined && !mayFold(name)) {
      // All plain so far: a clash needs a name that folds to another, checked once one turns up.
      continue
    }
    if (seen === undefined) {
      seen = new Map()
      for (const earlier of Object.keys(obj)) {
        if (earlier === name) break
        seen.set(fold(earlier), earlier)
      }
    }
    const key = fold(name)
    const other = seen.get(key)
    if (other !== undefined) return [other, name]
    seen.set(key, name)
  }
  return undefined
}

/**
 * The first pair of member names in `value` (an object, or arrays and objects within it, to a bounded depth) that
 * another parser may read as the same member.
 */
export function foldedClash(value: unknown, depth = 0): [string, string] | undefined {
  if (depth > MAX_DEPTH) return undefined
  if (Array.isArray(value)) {
    for (const v of value) {
      const c = foldedClash(v, depth + 1)
      if (c !== undefined) return c
    }
    return undefined
  }
  if (!isObject(value)) return undefined
  const own = clashIn(value)
  if (own !== undefined) return own
  for (const name in value) {
    const v = value[name]
    if (v !== null && typeof v === 'object') {
      const c = foldedClash(v, depth + 1)
      if (c !== undefined) return c
    }
  }
  return undefined
}
