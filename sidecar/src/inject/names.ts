/**
 * The names the injector writes into pods and reads from them. They are an
 * interface with platform teams (labels in namespace selectors, annotations in
 * manifests, the container name in ClusterSPIFFEID selectors): never rename
 * one without a migration.
 */

/** The sidecar's container name; spire-controller-manager entries pin `k8s:container-name:svidecar` to it. */
export const SIDECAR_NAME = 'svidecar'

/** Namespace label and pod label or annotation: `enabled`/`true` opts in, `disabled`/`false` opts out. */
export const INJECT_KEY = 'svidecar.io/inject'

/** What the injector did, as JSON; its presence makes a second injection a no-op. */
export const STATUS_ANNOTATION = 'svidecar.io/status'

/** Per-pod tuning annotations (see options.ts for their values). */
export const ANNOTATIONS = {
  mode: 'svidecar.io/mode',
  config: 'svidecar.io/config',
  secret: 'svidecar.io/secret',
  workloadApi: 'svidecar.io/workload-api',
  outboundEnv: 'svidecar.io/outbound-env',
  outboundPort: 'svidecar.io/outbound-port',
  adminPort: 'svidecar.io/admin-port',
  prometheus: 'svidecar.io/prometheus-annotations',
} as const

export const VOLUMES = {
  workloadApi: 'svidecar-workload-api',
  config: 'svidecar-config',
  tmp: 'svidecar-tmp',
} as const

/** The admin port's name: probes, the PodMonitor and Prometheus relabelling find it by this name. */
export const ADMIN_PORT_NAME = 'svidecar-admin'

export const MOUNTS = {
  workloadApi: '/spiffe-workload-api',
  config: '/etc/svidecar',
  tmp: '/tmp',
} as const

/** The uid of the distroless `nonroot` user the image runs as. */
export const SIDECAR_UID = 65532

const ON = new Set(['enabled', 'true'])
const OFF = new Set(['disabled', 'false'])

/**
 * `on`/`off` for a switch value, `undefined` when absent, `invalid` for anything else. Exact, as the API
 * server's selectors and CEL conditions compare it: `Disabled` read as off here would be a pod the webhook
 * skips and the backstop policy then rejects for having no sidecar.
 */
export function switchValue(v: string | undefined): 'on' | 'off' | 'invalid' | undefined {
  if (v === undefined) return undefined
  if (ON.has(v)) return 'on'
  if (OFF.has(v)) return 'off'
  return 'invalid'
}
