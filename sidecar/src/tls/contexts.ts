/**
 * One node:tls SecureContext per identity generation. Parsing PEM keys and
 * roots costs far more than a handshake's lookup, so every handshake of a
 * generation shares the context built once when the update arrived.
 */
import { createSecureContext, type SecureContext } from 'node:tls'
import type { IdentitySnapshot } from '../identity/identity.ts'
import type { TlsParameters } from './profiles.ts'

export type ContextOptions = TlsParameters

export function secureContextOptions(snapshot: IdentitySnapshot, options: ContextOptions) {
  return {
    key: snapshot.keyPem,
    cert: snapshot.certChainPem,
    // The union of held roots is OpenSSL's first layer; the per-trust-domain check runs after it in peer.ts.
    ca: snapshot.allRootsPem,
    ...protocolOptions(options),
  }
}

/** Versions and suites of a profile, for a context with or without credentials. */
export function protocolOptions(options: TlsParameters) {
  return { minVersion: options.minVersion, maxVersion: options.maxVersion, ciphers: options.ciphers }
}

export class ContextCache {
  readonly #options: ContextOptions
  #generation = -1
  #context: SecureContext | undefined

  constructor(options: ContextOptions) {
    this.#options = options
  }

  get(snapshot: IdentitySnapshot): SecureContext {
    if (this.#context === undefined || this.#generation !== snapshot.generation) {
      this.#context = createSecureContext(secureContextOptions(snapshot, this.#options))
      this.#generation = snapshot.generation
    }
    return this.#context
  }
}
