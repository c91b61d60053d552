/**
 * A trie over path segments with whole-segment wildcards, shared by SPIFFE
 * ID patterns, HTTP route paths and MCP resource URIs. A lookup walks the
 * request's segments once per wildcard branch it meets, so its cost grows
 * with the depth of the path and the wildcards on it, not with the number of
 * patterns stored.
 *
 * Segments of a pattern: a literal, `*` (exactly one non-empty segment),
 * `**` (zero or more segments), or a glob inside one segment (`*.json`).
 */

export type SegmentPattern =
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'one' }
  | { readonly kind: 'any' }
  | { readonly kind: 'glob'; readonly source: string; readonly re: RegExp }

/** A class with every field set in the constructor, so all nodes share one shape and lookups stay monomorphic. */
class Node<T> {
  literal: Map<string, Node<T>> | undefined = undefined
  one: Node<T> | undefined = undefined
  any: Node<T> | undefined = undefined
  globs: { source: string; re: RegExp; node: Node<T> }[] | undefined = undefined
  values: T[] | undefined = undefined
}

/** Parses one segment of a pattern; throws on a `**` that is not a whole segment. */
export function segmentPattern(segment: string): SegmentPattern {
  if (segment === '*') return { kind: 'one' }
  if (segment === '**') return { kind: 'any' }
  if (!segment.includes('*')) return { kind: 'literal', value: segment }
  if (segment.includes('**')) throw new Error(`"${segment}": "**" must be a whole segment`)
  const re = new RegExp(`^${segment.split('*').map(escapeRegExp).join('[^/]*')}$`)
  return { kind: 'glob', source: segment, re }
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}

export class SegmentTrie<T> {
  readonly #root: Node<T> = new Node()
  #size = 0

  get size(): number {
    return this.#size
  }

  insert(pattern: readonly SegmentPattern[], value: T): void {
    let node = this.#root
    for (const seg of pattern) {
      switch (seg.kind) {
        case 'literal': {
          node.literal ??= new Map()
          let next = node.literal.get(seg.value)
          if (next === undefined) {
            next = new Node()
            node.literal.set(seg.value, next)
          }
          node = next
          break
        }
        case 'one':
          node.one ??= new Node()
          node = node.one
          break
        case 'any':
          node.any ??= new Node()
          node = node.any
          break
        case 'glob': {
          node.globs ??= []
          let entry = node.globs.find((g) => g.source === seg.source)
          if (entry === undefined) {
            entry = { source: seg.source, re: seg.re, node: new Node() }
            node.globs.push(entry)
          }
          node = entry.node
          break
        }
      }
    }
    node.values ??= []
    node.values.push(value)
    this.#size++
  }

  /** Appends the values of every pattern that matches `segments` to `out` (possibly with repeats). */
  match(segments: readonly string[], out: T[]): void {
    walk(this.#root, segments, 0, out)
  }
}

function walk<T>(node: Node<T>, segs: readonly string[], i: number, out: T[]): void {
  const any = node.any
  if (any !== undefined) {
    if (
      any.literal === undefined &&
      any.one === undefined &&
      any.any === undefined &&
      any.globs === undefined
    ) {
      // A trailing `**` matches whatever is left: no need to try every split point.
      const values = any.values
      if (values !== undefined) for (let k = 0; k < values.length; k++) out.push(values[k] as T)
    } else {
      // `**` takes zero or more segments: try every split point.
      for (let k = i; k <= segs.length; k++) walk(any, segs, k, out)
    }
  }
  if (i === segs.length) {
    const values = node.values
    if (values !== undefined) for (let k = 0; k < values.length; k++) out.push(values[k] as T)
    return
  }
  const seg = segs[i] as string
  const lit = node.literal?.get(seg)
  if (lit !== undefined) walk(lit, segs, i + 1, out)
  if (node.one !== undefined && seg !== '') walk(node.one, segs, i + 1, out)
  if (node.globs !== undefined) {
    const globs = node.globs
    for (let k = 0; k < globs.length; k++) {
      const g = globs[k] as { re: RegExp; node: Node<T> }
      if (g.re.test(seg)) walk(g.node, segs, i + 1, out)
    }
  }
}

/** Whether one pattern matches `segments`; the same semantics as the trie, for explanations. */
export function matchSegments(pattern: readonly SegmentPattern[], segs: readonly string[]): boolean {
  const trie = new SegmentTrie<true>()
  trie.insert(pattern, true)
  const out: true[] = []
  trie.match(segs, out)
  return out.length > 0
}
