// The sidecar as a library: what the CLI uses, for embedding and for tests.
export { type ConfigError, loadConfig, parseConfig, type SidecarConfig } from './config/index.ts'
export { ERROR_TABLE, isSvidecarError, SvidecarError, type SvidecarErrorCode } from './errors/index.ts'
export { createLogger, type Logger } from './observe/log.ts'
export type { PolicyDecision, PolicyEngine, PolicyRequest, PolicyResource } from './policy/engine.ts'
export { loadPolicyFile, PolicyError, parsePolicy } from './policy/file.ts'
export { createOpaEngine, OpaEngine, type OpaEngineOptions } from './policy/opa/engine.ts'
export { PolicyStore } from './policy/store.ts'
export { Sidecar, type SidecarOptions } from './sidecar.ts'
