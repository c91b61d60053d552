/**
 * The policy engine a sidecar's configuration names, opened once at start:
 * the built-in format (a PolicyStore that reloads its file), Cedar (loaded
 * and prepared once; a new file needs a restart), or an OPA server asked per
 * decision. A source that does not load throws, so `svidecar run` can say why
 * and exit instead of denying everything silently.
 */
import type { PolicyConfig } from '../config/index.ts'
import { SvidecarError } from '../errors/index.ts'
import { createCedarEngine } from './cedar/engine.ts'
import type { PolicyEngine } from './engine.ts'
import { createOpaEngine } from './opa/engine.ts'
import { PolicyStore } from './store.ts'

export interface OpenedPolicy {
  readonly engine: PolicyEngine
  /** The built-in engine's store, whose reloads are logged and counted. */
  readonly store?: PolicyStore
  /** For people: which engine decides, from where. */
  readonly description: string
  close(): Promise<void>
}

export function openPolicy(config: PolicyConfig): OpenedPolicy {
  if (config.engine === 'opa') {
    const opa = config.opa
    if (opa === undefined)
      throw new SvidecarError('SVD_CONFIG_INVALID', 'policy.opa is required with engine: opa')
    const engine = createOpaEngine({
      url: opa.url,
      package: opa.package,
      timeoutMs: opa.timeoutMs,
      cache: { maxEntries: opa.cacheEntries, ttlMs: opa.cacheTtlMs },
    })
    return { engine, description: `OPA at ${engine.endpoint}`, close: () => engine.close() }
  }
  const file = config.file
  if (file === undefined) {
    throw new SvidecarError('SVD_CONFIG_INVALID', `policy.file is required with engine: ${config.engine}`)
  }
  if (config.engine === 'cedar') {
    const engine = createCedarEngine(file, {
      ...(config.schema === undefined ? {} : { schema: config.schema }),
      ...(config.mode === undefined ? {} : { mode: config.mode }),
    })
    return { engine, description: `Cedar policy ${file}`, close: async () => {} }
  }
  const store = PolicyStore.open(file)
  return {
    engine: store,
    store,
    description: `policy ${file}`,
    close: async () => store.close(),
  }
}
