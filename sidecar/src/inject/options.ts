/**
 * What to inject: the cluster-wide defaults the injector was started with
 * (command-line flags), overridden per pod by `svidecar.io/*` annotations. An
 * annotation with a value we cannot use is an error naming the annotation,
 * never silently ignored: a typo in `svidecar.io/mode` must not quietly give
 * the pod the other kind of sidecar.
 */
import { ANNOTATIONS, switchValue } from './names.ts'

export type SidecarMode = 'native' | 'container'
export type WorkloadApiSource = 'csi' | 'hostPath'

export interface Resources {
  requests: Record<string, string>
  limits: Record<string, string>
}

/** The injector's settings: defaults for every pod. */
export interface InjectorOptions {
  image: string
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never'
  /** native: an init container with restartPolicy Always (Kubernetes ≥ 1.29); container: a regular one. */
  mode: SidecarMode
  workloadApi: WorkloadApiSource
  /** The node directory holding the agent's socket, for `hostPath` only. */
  hostPathDir: string
  /** The socket's file name inside the mounted directory (the agent's socket_path). */
  socketName: string
  /** The ConfigMap holding `svidecar.yaml` (and the policy it names) when a pod does not say. */
  configMap: string
  adminPort: number
  outboundPort: number
  /**
   * Add prometheus.io/scrape|port|path when the pod has none of its own. Off by default (kubernetes.md §4): they
   * are a relabelling convention, not a Prometheus feature, and clash with an app that scrapes by them itself.
   */
  prometheusAnnotations: boolean
  /** Never inject here, whatever a pod says: the control plane, and the injector's own namespace. */
  excludedNamespaces: string[]
  resources: Resources
}

export const DEFAULT_OPTIONS: InjectorOptions = {
  image: 'svidecar:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  mode: 'native',
  workloadApi: 'csi',
  hostPathDir: '/run/spire/agent-sockets',
  // The spire-agent Helm chart's socket file, which the SPIFFE CSI driver exposes.
  socketName: 'spire-agent.sock',
  configMap: 'svidecar',
  adminPort: 15000,
  outboundPort: 15001,
  prometheusAnnotations: false,
  excludedNamespaces: ['kube-system', 'kube-public', 'kube-node-lease'],
  resources: {
    requests: { cpu: '50m', memory: '64Mi' },
    limits: { memory: '256Mi' },
  },
}

/** One app environment variable pointed at the outbound listener, e.g. OPENAI_BASE_URL → /v1. */
export interface OutboundEnv {
  name: string
  path: string
}

/** The settings for one pod. */
export interface PodOptions extends InjectorOptions {
  secret: string | undefined
  outboundEnv: OutboundEnv[]
}

/** Shorthands for the SDKs' own variables: the OpenAI SDK's base URL includes /v1, Anthropic's does not. */
const ENV_SHORTHANDS: Readonly<Record<string, OutboundEnv>> = {
  openai: { name: 'OPENAI_BASE_URL', path: '/v1' },
  anthropic: { name: 'ANTHROPIC_BASE_URL', path: '' },
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
// A DNS-1123 subdomain: what ConfigMap and Secret names must be.
const OBJECT_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const PATH = /^\/[A-Za-z0-9\-._~/%]*$/

/** The pod's options, or the problems with its annotations (each naming the annotation). */
export function podOptions(
  base: InjectorOptions,
  annotations: Readonly<Record<string, string>>,
): { options: PodOptions; problems: string[] } {
  const problems: string[] = []
  const options: PodOptions = { ...base, secret: undefined, outboundEnv: [] }
  const bad = (key: string, why: string) => problems.push(`annotation ${key}: ${why}`)

  const mode = annotations[ANNOTATIONS.mode]
  if (mode !== undefined) {
    if (mode === 'native' || mode === 'container') options.mode = mode
    else bad(ANNOTATIONS.mode, `"${mode}" is neither native nor container`)
  }
  const source = annotations[ANNOTATIONS.workloadApi]
  if (source !== undefined) {
    if (source === 'csi' || source === 'hostPath') options.workloadApi = source
    else bad(ANNOTATIONS.workloadApi, `"${source}" is neither csi nor hostPath`)
  }
  for (const key of [ANNOTATIONS.config, ANNOTATIONS.secret] as const) {
    const name = annotations[key]
    if (name === undefined) continue
    if (!OBJECT_NAME.test(name)) bad(key, `"${name}" is not a valid object name`)
    else if (key === ANNOTATIONS.config) options.configMap = name
    else options.secret = name
  }
  for (const [key, field] of [
    [ANNOTATIONS.adminPort, 'adminPort'],
    [ANNOTATIONS.outboundPort, 'outboundPort'],
  ] as const) {
    const text = annotations[key]
    if (text === undefined) continue
    const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN
    // Ports below 1024 need a capability the restricted profile drops.
    if (!(port >= 1024 && port <= 65535)) bad(key, `"${text}" is not a port from 1024 to 65535`)
    else options[field] = port
  }
  if (options.adminPort === options.outboundPort) {
    bad(ANNOTATIONS.adminPort, `the admin and outbound ports are both ${options.adminPort}`)
  }
  const prom = switchValue(annotations[ANNOTATIONS.prometheus])
  if (prom === 'invalid') bad(ANNOTATIONS.prometheus, 'expected true or false')
  else if (prom !== undefined) options.prometheusAnnotations = prom === 'on'

  const env = annotations[ANNOTATIONS.outboundEnv]
  if (env !== undefined) {
    const seen = new Set<string>()
    for (const raw of env.split(',')) {
      const item = raw.trim()
      if (item === '') continue
      const parsed = parseEnvItem(item)
      if (typeof parsed === 'string') bad(ANNOTATIONS.outboundEnv, parsed)
      else if (seen.has(parsed.name)) bad(ANNOTATIONS.outboundEnv, `${parsed.name} is named twice`)
      else {
        seen.add(parsed.name)
        options.outboundEnv.push(parsed)
      }
    }
  }
  return { options, problems }
}

/** `openai`, `anthropic`, `NAME` (the listener's root) or `NAME=/path`. */
function parseEnvItem(item: string): OutboundEnv | string {
  const shorthand = ENV_SHORTHANDS[item.toLowerCase()]
  if (shorthand !== undefined) return shorthand
  const eq = item.indexOf('=')
  const name = eq === -1 ? item : item.slice(0, eq).trim()
  const path = eq === -1 ? '' : item.slice(eq + 1).trim()
  if (!ENV_NAME.test(name)) return `"${name}" is not an environment variable name (or openai, anthropic)`
  if (path !== '' && !PATH.test(path)) return `"${path}" for ${name} is not a URL path starting with /`
  return { name, path: path === '/' ? '' : path }
}
