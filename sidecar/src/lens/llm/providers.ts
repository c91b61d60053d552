/**
 * The configured LLM providers and how a call picks one: by the API style
 * of its path (Anthropic endpoints go to `anthropic` providers, OpenAI ones
 * to `openai` and `openai-compatible` providers) and then by the first
 * provider whose model globs take the model. Each provider names the
 * upstream its traffic goes to (so TLS settings are the upstreams' own) and
 * holds the credential the sidecar injects.
 */
import { matchName, type NameGlob, nameGlob } from '../../policy/builtin/names.ts'
import { ANTHROPIC_ENDPOINTS } from './anthropic.ts'
import type { LlmApi } from './call.ts'
import { Credential, type CredentialOptions, type CredentialSource } from './credential.ts'
import { OPENAI_ENDPOINTS } from './openai.ts'

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

/**
 * The style of a request on an LLM route before the lens has read it, as the lens will name it: Anthropic's
 * endpoints are Anthropic's, any other path is Anthropic's when the request has `anthropic-version` (the SDK
 * sends it on every call, `GET /v1/models` included), and OpenAI's otherwise.
 */
export function requestStyle(method: string, path: string, anthropicVersion: boolean): ApiStyle {
  const key = `${method} ${path}`
  const api =
    key === 'GET /v1/models' ? undefined : (OPENAI_ENDPOINTS.get(key) ?? ANTHROPIC_ENDPOINTS.get(key))
  if (api !== undefined) return styleOf(api)
  return anthropicVersion ? 'anthropic' : 'openai'
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
