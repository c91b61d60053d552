/**
 * The index that keeps a decision independent of the number of rules: rules
 * are filed first by subject (a segment trie per trust domain, so exact IDs,
 * patterns and whole trust domains are one walk of the caller's ID), then by
 * resource kind, then by resource (method and path trie, name globs by
 * prefix, URI trie). A lookup touches only the rules whose subject and
 * resource both match; the engine then orders them and runs conditions.
 */
import type { SpiffeId } from 'workload-api-client'
import type { PolicyResource, ResourceKind } from '../engine.ts'
import { NameIndex } from './names.ts'
import type { CompiledRule } from './rules.ts'
import { SegmentTrie } from './segment-trie.ts'

class Bucket {
  httpAnyMethod: SegmentTrie<CompiledRule> | undefined
  httpByMethod: Map<string, SegmentTrie<CompiledRule>> | undefined
  names: Map<ResourceKind, NameIndex<CompiledRule>> | undefined
  uris: SegmentTrie<CompiledRule> | undefined

  add(rule: CompiledRule): void {
    for (const r of rule.resources) {
      switch (r.kind) {
        case 'http.route':
          if (r.methods === undefined) {
            this.httpAnyMethod ??= new SegmentTrie()
            this.httpAnyMethod.insert(r.path, rule)
          } else {
            this.httpByMethod ??= new Map()
            for (const m of r.methods) {
              let trie = this.httpByMethod.get(m)
              if (trie === undefined) {
                trie = new SegmentTrie()
                this.httpByMethod.set(m, trie)
              }
              trie.insert(r.path, rule)
            }
          }
          break
        case 'mcp.resource':
          this.uris ??= new SegmentTrie()
          this.uris.insert(r.uri, rule)
          break
        default: {
          this.names ??= new Map()
          let idx = this.names.get(r.kind)
          if (idx === undefined) {
            idx = new NameIndex()
            this.names.set(r.kind, idx)
          }
          idx.insert(r.glob, rule)
        }
      }
    }
  }

  match(resource: PolicyResource, segments: readonly string[] | undefined, out: CompiledRule[]): void {
    switch (resource.kind) {
      case 'http.route':
        this.httpAnyMethod?.match(segments as string[], out)
        this.httpByMethod?.get(resource.method)?.match(segments as string[], out)
        return
      case 'mcp.resource':
        this.uris?.match(segments as string[], out)
        return
      default:
        this.names?.get(resource.kind)?.match(resource.name, out)
    }
  }
}

/** A subject ID is long-lived (a connection's peer, the workload itself): split its path once. */
const idSegments = new WeakMap<SpiffeId, readonly string[]>()

function segmentsOf(id: SpiffeId): readonly string[] {
  let segs = idSegments.get(id)
  if (segs === undefined) {
    segs = id.segments
    idSegments.set(id, segs)
  }
  return segs
}

export class RuleIndex {
  readonly #byTrustDomain = new Map<string, SegmentTrie<Bucket>>()
  readonly #buckets = new Map<string, Bucket>()
  /** Exact-ID subjects, most of a large policy: one map lookup instead of a trie walk. */
  readonly #exact = new Map<string, Bucket>()

  constructor(rules: readonly CompiledRule[]) {
    for (const rule of rules) {
      for (const s of rule.subjects) {
        let bucket = this.#buckets.get(s.key)
        if (bucket === undefined) {
          bucket = new Bucket()
          this.#buckets.set(s.key, bucket)
          if (s.exact !== undefined) {
            this.#exact.set(s.exact, bucket)
            bucket.add(rule)
            continue
          }
          let trie = this.#byTrustDomain.get(s.trustDomain)
          if (trie === undefined) {
            trie = new SegmentTrie()
            this.#byTrustDomain.set(s.trustDomain, trie)
          }
          trie.insert(s.segments, bucket)
        }
        bucket.add(rule)
      }
    }
  }

  /**
   * Rules whose subject and resource match, in file order, each once.
   * `segments` are the resource's path or URI segments (http.route, mcp.resource).
   */
  candidates(
    subject: SpiffeId,
    resource: PolicyResource,
    segments: readonly string[] | undefined,
  ): CompiledRule[] {
    const out: CompiledRule[] = []
    this.#exact.get(subject.toString())?.match(resource, segments, out)
    const trie = this.#byTrustDomain.get(subject.trustDomain.name)
    if (trie !== undefined) {
      const buckets: Bucket[] = []
      trie.match(segmentsOf(subject), buckets)
      for (let i = 0; i < buckets.length; i++) (buckets[i] as Bucket).match(resource, segments, out)
    }
    if (out.length < 2) return out
    out.sort((a, b) => a.index - b.index)
    let w = 1
    for (let i = 1; i < out.length; i++) {
      if (out[i] !== out[w - 1]) out[w++] = out[i] as CompiledRule
    }
    out.length = w
    return out
  }
}
