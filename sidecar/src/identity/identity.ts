/**
 * The sidecar's identity: the current X.509-SVID and the trust bundles, fed
 * by a Workload API watch. Consumers take an immutable snapshot per
 * handshake; an update replaces the snapshot, never mutates it, so a
 * handshake in progress sees one consistent SVID and bundle set.
 *
 * Fail closed: `current()` is undefined whenever no SVID inside its validity
 * window is held (none yet, expired without renewal, revoked).
 */
import type { X509Certificate } from 'node:crypto'
import {
  type BundleSet,
  type SpiffeError,
  type X509Bundle,
  type X509BundleSource,
  X509Source,
  type X509Svid,
} from 'workload-api-client'
import { SvidecarError } from '../errors/index.ts'

export interface IdentityOptions {
  /** Workload API address; default SPIFFE_ENDPOINT_SOCKET. */
  socket?: string
  hint?: string
  spiffeId?: string
  env?: NodeJS.ProcessEnv
  /** For tests: a quicker reconnect than the default 1 s … 30 s. */
  backoff?: () => { next(): number; reset(): void }
}

export interface IdentitySnapshot {
  readonly svid: X509Svid
  readonly bundles: BundleSet<X509Bundle>
  /** Increments with every change of SVID or bundles; keys caches that must not outlive a rotation. */
  readonly generation: number
  /** PEM forms for node:tls, computed once per update rather than per handshake. */
  readonly certChainPem: string
  readonly keyPem: string
  /** Every root of every held trust domain: OpenSSL's first layer of verification. */
  readonly allRootsPem: string[]
  readonly bundleSource: X509BundleSource
}

type Listener = (snapshot: IdentitySnapshot | undefined) => void

// Watch errors that mean nobody answered; PERMISSION_DENIED and the like come from an agent that did.
const UNREACHABLE: ReadonlySet<string> = new Set(['SPIFFE_WLAPI_UNAVAILABLE', 'SPIFFE_WLAPI_TIMEOUT'])

export class Identity {
  readonly #source: X509Source
  readonly #listeners = new Set<Listener>()
  #snapshot: IdentitySnapshot | undefined
  #generation = 0
  /** The watch's last error said the Workload API could not be reached (until an update clears lastError). */
  #unreachable = false

  private constructor(source: X509Source) {
    this.#source = source
    source.onUpdate(() => this.#refresh())
    source.onError((err) => {
      this.#unreachable = UNREACHABLE.has(err.code)
    })
  }

  /** Starts the watch; does not wait for the first SVID (see waitReady). */
  static start(options: IdentityOptions = {}): Identity {
    const source = new X509Source({
      ...(options.socket === undefined ? {} : { address: options.socket }),
      ...(options.hint === undefined ? {} : { hint: options.hint }),
      ...(options.spiffeId === undefined ? {} : { spiffeId: options.spiffeId }),
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    })
    return new Identity(source)
  }

  /** The snapshot to handshake with, or undefined: fail closed. */
  current(): IdentitySnapshot | undefined {
    const snap = this.#snapshot
    // The source drops an expired SVID on a timer; the date check also covers the gap before it fires.
    if (snap === undefined || this.#source.svid === undefined || Date.now() > snap.svid.notAfter.getTime()) {
      return undefined
    }
    return snap
  }

  /** current(), or a 503-class error that says why there is none. */
  require(): IdentitySnapshot {
    const snap = this.current()
    if (snap !== undefined) return snap
    throw new SvidecarError('SVD_IDENTITY_UNAVAILABLE', `no valid X.509-SVID: ${this.notReadyReason()}`)
  }

  get ready(): boolean {
    return this.current() !== undefined
  }

  /** Why the identity is not ready, for /readyz and logs. */
  notReadyReason(): string {
    const err: SpiffeError | undefined = this.#source.lastError
    if (this.#source.status === 'closed') return 'identity closed'
    if (err !== undefined) return `${err.code}: ${err.message}`
    return 'waiting for the first X.509-SVID from the Workload API'
  }

  get lastError(): SpiffeError | undefined {
    return this.#source.lastError
  }

  /**
   * False while the watch keeps failing to reach the Workload API (the agent is down, its socket gone):
   * the SVID held may still be valid, so readiness alone would not show it before expiry.
   */
  get workloadApiReachable(): boolean {
    // The source clears lastError on the first update of a new stream; an expiry while unreachable keeps one.
    return !(this.#unreachable && this.#source.lastError !== undefined)
  }

  onChange(listener: Listener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  async waitReady(timeoutMs: number): Promise<IdentitySnapshot> {
    try {
      await this.#source.waitReady({ timeoutMs })
    } catch (err) {
      throw new SvidecarError('SVD_IDENTITY_UNAVAILABLE', `no valid X.509-SVID within ${timeoutMs} ms`, {
        cause: err,
      })
    }
    return this.require()
  }

  close(): void {
    this.#source.close()
    // The source does not report its own close; drop the snapshot (and its key) here.
    this.#refresh()
  }

  #refresh(): void {
    const svid = this.#source.svid
    const bundles = this.#source.bundles
    const previous = this.#snapshot
    if (svid === undefined) {
      this.#snapshot = undefined
    } else if (previous === undefined || previous.svid !== svid || previous.bundles !== bundles) {
      const pem = svid.toPem()
      const roots: string[] = []
      for (const bundle of bundles) for (const cert of bundle.authorities) roots.push(toPem(cert))
      this.#snapshot = {
        svid,
        bundles,
        generation: ++this.#generation,
        certChainPem: pem.certChain,
        keyPem: pem.key,
        allRootsPem: roots,
        bundleSource: { getX509BundleForTrustDomain: (td) => bundles.get(td) },
      }
    } else return
    for (const listener of this.#listeners) {
      try {
        listener(this.#snapshot)
      } catch {
        // One consumer's failure must not keep the others on stale credentials.
      }
    }
  }
}

function toPem(cert: X509Certificate): string {
  return cert.toString()
}
