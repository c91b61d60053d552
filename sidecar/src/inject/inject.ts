/**
 * The injector: one Kubernetes object in, one RFC 6902 JSON Patch out. Pure
 * (no I/O, no clock), so the admission webhook and the offline
 * `svidecar inject` give the same answer for the same object.
 *
 * It injects only what was asked for (namespace or pod opt-in, no opt-out),
 * never twice (the status annotation, and the sidecar's name in containers
 * and initContainers alike), and never over something the pod already has: a
 * container, volume or port the sidecar needs is a refusal, not a merge.
 */
import { SvidecarError } from '../errors/index.ts'
import {
  type AddOperation,
  type JsonObject,
  type JsonValue,
  PatchBuilder,
  type Segment,
} from './json-patch.ts'
import { podPath } from './kinds.ts'
import { ADMIN_PORT_NAME, INJECT_KEY, SIDECAR_NAME, STATUS_ANNOTATION, switchValue } from './names.ts'
import { type InjectorOptions, type PodOptions, podOptions } from './options.ts'
import { outboundEnv, sidecarContainer, sidecarPorts, sidecarVolumes } from './sidecar-spec.ts'

export interface InjectContext {
  /** Where the object goes: AdmissionRequest.namespace (a pod made by a controller often has none of its own). */
  namespace?: string | undefined
  /**
   * The namespace opted in: the webhook is only called for selected pods
   * (namespaceSelector, matchConditions), and offline injection is asked for
   * by a person. A pod's own switch still wins.
   */
  namespaceOptedIn: boolean
}

/** What the status annotation records, so a reader (and a second injection) knows what was added. */
export interface InjectStatus {
  mode: 'native' | 'container'
  initContainers: string[]
  containers: string[]
  volumes: string[]
  /** Environment variables set per app container. */
  env: Record<string, string[]>
  annotations: string[]
  /** Labels added (the opt-in label, for a pod that opted in by annotation); absent when none. */
  labels?: string[]
}

export interface InjectResult {
  injected: boolean
  /** Why nothing was injected; empty when something was. */
  reason: string
  patch: AddOperation[]
  /** The object with the patch applied (the original object when nothing was injected). */
  object: JsonObject
  /** Things a person should know (shown by kubectl as admission warnings). */
  warnings: string[]
  status?: InjectStatus
}

type StringMap = Record<string, string>

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function stringMap(v: unknown): StringMap {
  if (!isObject(v)) return {}
  const out: StringMap = {}
  for (const [k, value] of Object.entries(v)) if (typeof value === 'string') out[k] = value
  return out
}

function containers(spec: JsonObject, field: 'containers' | 'initContainers'): JsonObject[] {
  const list = spec[field]
  return Array.isArray(list) ? list.filter(isObject) : []
}

function describe(object: JsonObject): string {
  const meta = isObject(object.metadata) ? object.metadata : {}
  const name =
    typeof meta.name === 'string'
      ? meta.name
      : typeof meta.generateName === 'string'
        ? `${meta.generateName}*`
        : ''
  return `${String(object.kind)}${name === '' ? '' : ` ${name}`}`
}

export function inject(input: unknown, base: InjectorOptions, context: InjectContext): InjectResult {
  if (!isObject(input)) {
    throw new SvidecarError(
      'SVD_INJECT_INVALID',
      'expected a Kubernetes object (a mapping with apiVersion and kind)',
    )
  }
  const object = input
  const skip = (reason: string, warnings: string[] = []): InjectResult => ({
    injected: false,
    reason,
    patch: [],
    object,
    warnings,
  })
  const path = podPath(object.apiVersion, object.kind)
  if (path === undefined) {
    const what = `${String(object.kind ?? '(no kind)')} (${String(object.apiVersion ?? 'no apiVersion')})`
    return skip(`${what} is not a kind svidecar injects into`)
  }
  const pod = path.reduce<JsonValue | undefined>(
    (node, seg) => (isObject(node) ? node[seg] : undefined),
    object,
  )
  const where = describe(object)
  if (!isObject(pod) || !isObject(pod.spec) || !Array.isArray(pod.spec.containers)) {
    throw new SvidecarError(
      'SVD_INJECT_INVALID',
      `${where}: no pod spec with containers at /${[...path, 'spec'].join('/')}`,
    )
  }
  const spec = pod.spec
  const meta = isObject(pod.metadata) ? pod.metadata : {}
  const labels = stringMap(meta.labels)
  const annotations = stringMap(meta.annotations)
  const topMeta = isObject(object.metadata) ? object.metadata : {}
  const namespace =
    context.namespace ?? (typeof topMeta.namespace === 'string' ? topMeta.namespace : undefined)

  if (STATUS_ANNOTATION in annotations) return skip('already injected')
  if (namespace !== undefined && base.excludedNamespaces.includes(namespace)) {
    return skip(`namespace ${namespace} is excluded`, [
      `svidecar: not injected: namespace ${namespace} is excluded`,
    ])
  }
  // The label wins over the annotation: only labels reach the webhook's objectSelector.
  const fromLabel = switchValue(labels[INJECT_KEY])
  const fromAnnotation = switchValue(annotations[INJECT_KEY])
  const choice = fromLabel ?? fromAnnotation
  if (choice === 'invalid') {
    const value = labels[INJECT_KEY] ?? annotations[INJECT_KEY]
    throw new SvidecarError(
      'SVD_INJECT_INVALID',
      `${where}: ${INJECT_KEY}: "${value}" is none of enabled, disabled, true, false`,
    )
  }
  if (choice === 'off') return skip('opted out')
  if (choice === undefined && !context.namespaceOptedIn) return skip('not opted in')
  if (spec.hostNetwork === true) {
    // The sidecar's loopback listeners would be the node's.
    return skip('hostNetwork pod', ['svidecar: not injected: the pod uses hostNetwork'])
  }

  const existing = [
    ...containers(spec, 'initContainers').map((c) => ['spec.initContainers', c] as const),
    ...containers(spec, 'containers').map((c) => ['spec.containers', c] as const),
  ]
  const clash = existing.find(([, c]) => c.name === SIDECAR_NAME)
  if (clash !== undefined) {
    throw new SvidecarError(
      'SVD_INJECT_CONFLICT',
      `${where}: ${clash[0]} already has a container named "${SIDECAR_NAME}" that svidecar did not inject ` +
        `(no ${STATUS_ANNOTATION} annotation); rename it, or opt the pod out with the label ${INJECT_KEY}=disabled`,
    )
  }
  const { options, problems } = podOptions(base, annotations)
  if (problems.length > 0) {
    throw new SvidecarError('SVD_INJECT_INVALID', `${where}: ${problems.join('; ')}`)
  }
  const volumes = sidecarVolumes(options)
  const taken = new Set(
    (Array.isArray(spec.volumes) ? spec.volumes : []).filter(isObject).map((v) => String(v.name)),
  )
  const volumeClash = volumes.find((v) => taken.has(String(v.name)))
  if (volumeClash !== undefined) {
    throw new SvidecarError(
      'SVD_INJECT_CONFLICT',
      `${where}: the pod already has a volume named "${String(volumeClash.name)}"`,
    )
  }
  const ours = sidecarPorts(options)
  for (const [field, c] of existing) {
    for (const port of Array.isArray(c.ports) ? c.ports.filter(isObject) : []) {
      if (port.name === ADMIN_PORT_NAME || ours.includes(Number(port.containerPort))) {
        throw new SvidecarError(
          'SVD_INJECT_CONFLICT',
          `${where}: ${field} "${String(c.name)}" declares port ${String(port.name ?? port.containerPort)}, ` +
            `which the sidecar uses (admin ${options.adminPort}, outbound ${options.outboundPort}); ` +
            'choose others with the svidecar.io/admin-port and svidecar.io/outbound-port annotations',
        )
      }
    }
  }

  try {
    return build(
      object,
      path,
      options,
      volumes,
      Array.isArray(spec.containers) ? spec.containers : [],
      annotations,
      fromLabel === undefined && fromAnnotation === 'on',
    )
  } catch (err) {
    // A field of the wrong type where the patch must go (volumes that are not a list, env that is not one):
    // the object is malformed, and the API server would refuse it after admission anyway.
    if (err instanceof TypeError) throw new SvidecarError('SVD_INJECT_INVALID', `${where}: ${err.message}`)
    throw err
  }
}

/** A list of the original pod spec (`initContainers`), as it was: indices are the patch's. */
function getSpecList(object: JsonObject, path: readonly string[], field: string): JsonValue[] {
  let node: JsonValue | undefined = object
  for (const seg of [...path, 'spec', field]) node = isObject(node) ? node[seg] : undefined
  return Array.isArray(node) ? node : []
}

function build(
  object: JsonObject,
  path: readonly string[],
  options: PodOptions,
  volumes: JsonObject[],
  /** spec.containers as it was: indices are the patch's, so nothing is filtered out. */
  appContainers: JsonValue[],
  annotations: StringMap,
  /**
   * The pod opted in by annotation alone. Selectors see labels only (spire-controller-manager's ClusterSPIFFEID
   * podSelector, a PodMonitor), so the opt-in is copied to the label: a pod whose sidecar no registration
   * selects would wait for an SVID forever and never start its app.
   */
  labelOptIn: boolean,
): InjectResult {
  const patch = new PatchBuilder(object)
  const specPath: Segment[] = [...path, 'spec']
  const metaPath: Segment[] = [...path, 'metadata']
  const warnings: string[] = []
  const status: InjectStatus = {
    mode: options.mode,
    initContainers: [],
    containers: [],
    volumes: volumes.map((v) => String(v.name)),
    env: {},
    annotations: [],
  }
  if (options.mode === 'native') {
    // First: later init containers may already call out through the sidecar.
    patch.insert([...specPath, 'initContainers'], sidecarContainer(options), 'start')
    status.initContainers.push(SIDECAR_NAME)
  } else {
    // Last: the first container stays the one kubectl exec and logs pick by default.
    patch.insert([...specPath, 'containers'], sidecarContainer(options), 'end')
    status.containers.push(SIDECAR_NAME)
    const restartPolicy = patch.get([...specPath, 'restartPolicy'])
    if (restartPolicy === 'Never' || restartPolicy === 'OnFailure') {
      // A regular container that never exits keeps a Job's pod running after its work is done.
      warnings.push(
        `svidecar: restartPolicy ${restartPolicy}: the classic sidecar keeps the pod running after the app exits; ` +
          'use native sidecars (svidecar.io/mode: native, Kubernetes >= 1.29)',
      )
    }
  }
  for (const v of volumes) patch.insert([...specPath, 'volumes'], v, 'end')

  const env = outboundEnv(options)
  // The app's init containers run after a native sidecar (which is now first among them) and may call out
  // through it like the app; before a classic one, nothing listens yet.
  const initContainers = getSpecList(object, path, 'initContainers')
  const targets: [Segment, JsonValue, number][] = [
    ...(options.mode === 'native'
      ? initContainers.map((c, i) => ['initContainers', c, i + 1] as [Segment, JsonValue, number])
      : []),
    ...appContainers.map((c, i) => ['containers', c, i] as [Segment, JsonValue, number]),
  ]
  for (const [field, c, i] of targets) {
    if (!isObject(c)) continue
    const has = new Set((Array.isArray(c.env) ? c.env : []).filter(isObject).map((e) => String(e.name)))
    const set: string[] = []
    for (const e of env) {
      if (has.has(e.name)) {
        warnings.push(`svidecar: container ${String(c.name)} sets ${e.name} itself; left as it is`)
        continue
      }
      patch.insert([...specPath, field, i, 'env'], e, 'end')
      set.push(e.name)
    }
    if (set.length > 0) status.env[String(c.name)] = set
  }

  if (options.prometheusAnnotations) {
    if (Object.keys(annotations).some((k) => k.startsWith('prometheus.io/'))) {
      warnings.push(
        'svidecar: the pod has prometheus.io annotations of its own; scrape the sidecar with the PodMonitor',
      )
    } else {
      const scrape: StringMap = {
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': String(options.adminPort),
        'prometheus.io/path': '/metrics',
      }
      for (const [k, v] of Object.entries(scrape)) {
        patch.setKey([...metaPath, 'annotations'], k, v)
        status.annotations.push(k)
      }
    }
  }
  if (labelOptIn) {
    patch.setKey([...metaPath, 'labels'], INJECT_KEY, 'enabled')
    status.labels = [INJECT_KEY]
  }
  status.annotations.push(STATUS_ANNOTATION)
  patch.setKey([...metaPath, 'annotations'], STATUS_ANNOTATION, JSON.stringify(status))
  return { injected: true, reason: '', patch: patch.operations, object: patch.document, warnings, status }
}
