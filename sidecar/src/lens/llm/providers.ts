/**
 * The configured LLM providers and how a call picks one: by the API style
 * of its path (Anthropic endpoints go to `anthropic` providers, OpenAI ones
 * to `openai` and `openai-compatible` providers) and then by the first
 * provider whose model globs take the model. Each provider names the
 * upstream its traffic goes to (so TLS settings are the upstreams' own) and
 * holds the credential the sidecar injects.
 */
import { matchName, type NameGlob, nameGlob } from '../../policy/builtin/names.ts'
import type { LlmApi } from './call.ts'
import { Credential, type CredentialOptions, type CredentialSource } from './credential.ts'

export type ProviderKind = 'openai' | 'anthropic' | 'openai-compatible'
export type ApiStyle = 'openai' | 'anthropic'

export const DEFAULT_ANTHROPIC_VERSION = '2023-06-01'

export interface ProviderSpec {
  name: string
  kind: ProviderKind
  /** The name of the upstream (under `upstreams`) the provider is reached at. */
  upstream: string
  /** Model globs this provider serves (default: every model). */
  models: readonly string[]
  credential?: CredentialSource
  anthropicVersion?: string
}

export class Provider {
  readonly name: string
  readonly kind: ProviderKind
  readonly upstream: string
  readonly style: ApiStyle
  readonly anthropicVersion: string
  readonly credential: Credential | undefined
  readonly #models: readonly NameGlob[]

  constructor(spec: ProviderSpec, options: CredentialOptions) {
    this.name = spec.name
    this.kind = spec.kind
    this.upstream = spec.upstream
    this.style = spec.kind === 'anthropic' ? 'anthropic' : 'openai'
    this.anthropicVersion = spec.anthropicVersion ?? DEFAULT_ANTHROPIC_VERSION
    this.#models = spec.models.map(nameGlob)
    this.credential = spec.credential === undefined ? undefined : new Credential(spec.credential, options)
  }

  serves(model: string): boolean {
    return this.#models.some((g) => matchName(g, model))
  }
}

export function styleOf(api: LlmApi): ApiStyle {
  return api.startsWith('anthropic.') ? 'anthropic' : 'openai'
}

export class Providers {
  readonly list: readonly Provider[]

  constructor(specs: readonly ProviderSpec[], options: (name: string) => CredentialOptions = () => ({})) {
    this.list = specs.map((s) => new Provider(s, options(s.name)))
  }

  /** The provider for a call of this style (and model, when the call names one), or undefined. */
  pick(style: ApiStyle, model: string | undefined): Provider | undefined {
    for (const p of this.list) {
      if (p.style !== style) continue
      if (model === undefined || p.serves(model)) return p
    }
    return undefined
  }

  close(): void {
    for (const p of this.list) p.credential?.close()
  }
}
