/**
 * Bundles keyed by trust domain. A set never merges bundles of different
 * trust domains (SPIFFE_Federation.md §4.2): a peer is verified only against
 * the bundle of the trust domain its own ID names.
 */
import type { TrustDomain } from './spiffe-id.ts'

export interface TrustDomainBound {
  readonly trustDomain: TrustDomain
}

/** An immutable map from trust domain to bundle. Updates return a new set. */
export class BundleSet<B extends TrustDomainBound> implements Iterable<B> {
  readonly #byName: ReadonlyMap<string, B>

  constructor(bundles: Iterable<B> = []) {
    const map = new Map<string, B>()
    for (const b of bundles) map.set(b.trustDomain.name, b)
    this.#byName = map
  }

  /** The bundle of `trustDomain`, or undefined when none is held. */
  get(trustDomain: TrustDomain | string): B | undefined {
    return this.#byName.get(typeof trustDomain === 'string' ? trustDomain : trustDomain.name)
  }

  has(trustDomain: TrustDomain | string): boolean {
    return this.get(trustDomain) !== undefined
  }

  /** A new set with `bundle` added or replacing the one of its trust domain. */
  with(bundle: B): BundleSet<B> {
    const next = new Map(this.#byName)
    next.set(bundle.trustDomain.name, bundle)
    return new BundleSet(next.values())
  }

  /** A new set without the bundle of `trustDomain`. */
  without(trustDomain: TrustDomain | string): BundleSet<B> {
    const name = typeof trustDomain === 'string' ? trustDomain : trustDomain.name
    const next = new Map(this.#byName)
    next.delete(name)
    return new BundleSet(next.values())
  }

  get size(): number {
    return this.#byName.size
  }

  trustDomains(): TrustDomain[] {
    return [...this.#byName.values()].map((b) => b.trustDomain)
  }

  [Symbol.iterator](): Iterator<B> {
    return this.#byName.values()
  }
}
