/**
 * The policy engine a sidecar's configuration names, opened once at start:
 * the built-in format or Cedar (a PolicyStore that reloads the file when it
 * changes and keeps the last good policy when the new one is bad), or an OPA
 * server asked per decision. A source that does not load throws, so `svidecar run` can say why
 * and exit instead of denying everything silently.
 */
import type { PolicyConfig } from '../config/index.ts'
import { SvidecarError } from '../errors/index.ts'
import { CedarEngine } from './cedar/engine.ts'
import { loadCedarPolicy } from './cedar/load.ts'
import type { PolicyEngine } from './engine.ts'
import { createOpaEngine } from './opa/engine.ts'
import { PolicyStore } from './store.ts'

export interface OpenedPolicy {
  readonly engine: PolicyEngine
  /** The store of a file-based engine (built-in, Cedar), whose reloads are logged and counted. */
  readonly store?: PolicyStore
  /** For people: which engine decides, from where. */
  readonly description: string
  close(): Promise<void>
}

export function openPolicy(config: PolicyConfig): OpenedPolicy {
  const opened = openEngine(config)
  const headers = config.headers
  if (headers === undefined || headers.length === 0) return opened
  const { engine } = opened
  return {
    ...opened,
    engine: {
      get name() {
        return engine.name
      },
      headers,
      decide: (request) => engine.decide(request),
      // Headers are read by conditions only: a kind without conditions stays context-free.
      contextFree: (kind) => engine.contextFree?.(kind),
    },
  }
}

function openEngine(config: PolicyConfig): OpenedPolicy {
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
  const { schema, mode } = config
  const store =
    config.engine === 'cedar'
      ? PolicyStore.open(file, {
          engineName: 'cedar',
          // The schema is read again with each version of the policy; a change to it alone is not watched.
          load: (path, { maxBytes }) => {
            const policy = loadCedarPolicy(path, { maxBytes, ...(schema === undefined ? {} : { schema }) })
            return { engine: new CedarEngine(policy, mode), rules: policy.policies.length }
          },
        })
      : PolicyStore.open(file)
  return {
    engine: store,
    store,
    description: `${config.engine === 'cedar' ? 'Cedar policy' : 'policy'} ${file}`,
    close: async () => store.close(),
  }
}
