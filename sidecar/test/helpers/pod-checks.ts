/**
 * What the Kubernetes schemas do not check, checked on pod specs: the
 * mistakes an injector (or a hand-written manifest) makes that the API server
 * or the kubelet would only reject, or worse accept, at run time. Shared by
 * the injector tests and the manifest tests.
 */
import { Pod } from 'kubernetes-models/v1'

type Obj = Record<string, unknown>
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
const PORT_NAME = /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*$/
const RESTRICTED_VOLUMES = [
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
]

function list(v: unknown): Obj[] {
  return Array.isArray(v) ? (v as Obj[]) : []
}

/** Problems with a pod spec that schemas accept; [] when none. */
export function podSpecProblems(spec: Obj, where = 'spec'): string[] {
  const problems: string[] = []
  const init = list(spec.initContainers)
  const main = list(spec.containers)
  const names = new Set<string>()
  for (const [field, c] of [
    ...init.map((c) => ['initContainers', c] as const),
    ...main.map((c) => ['containers', c] as const),
  ]) {
    const name = String(c.name)
    if (!DNS_LABEL.test(name)) problems.push(`${where}.${field} ${name}: not a DNS label`)
    if (names.has(name)) problems.push(`${where}: two containers named ${name}`)
    names.add(name)
    if (c.restartPolicy !== undefined && (field === 'containers' || c.restartPolicy !== 'Always')) {
      problems.push(
        `${where}.${field} ${name}: restartPolicy ${String(c.restartPolicy)} is only allowed as Always on an init container`,
      )
    }
    const isSidecar = field === 'initContainers' && c.restartPolicy === 'Always'
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      if (c[probe] !== undefined && field === 'initContainers' && !isSidecar) {
        problems.push(`${where}.${field} ${name}: ${probe} on an init container that is not a sidecar`)
      }
    }
    const portNames = new Set(list(c.ports).map((p) => p.name))
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const port = ((c[probe] as Obj | undefined)?.httpGet as Obj | undefined)?.port
      if (typeof port === 'string' && !portNames.has(port))
        problems.push(`${where}.${field} ${name}: ${probe} names port ${port} it does not declare`)
    }
  }
  // The containers of a pod share one network namespace: a port name or number is the pod's.
  const portNames = new Map<string, string>()
  const portNumbers = new Map<string, string>()
  for (const c of [...init, ...main]) {
    for (const p of list(c.ports)) {
      if (p.name !== undefined) {
        if (!PORT_NAME.test(String(p.name)))
          problems.push(`${where}: port name ${String(p.name)} is not an IANA service name`)
        const other = portNames.get(String(p.name))
        if (other !== undefined)
          problems.push(`${where}: port name ${String(p.name)} in ${other} and ${String(c.name)}`)
        portNames.set(String(p.name), String(c.name))
      }
      const key = `${String(p.containerPort)}/${String(p.protocol ?? 'TCP')}`
      const other = portNumbers.get(key)
      if (other !== undefined) problems.push(`${where}: port ${key} in ${other} and ${String(c.name)}`)
      portNumbers.set(key, String(c.name))
    }
  }
  const volumes = new Set<string>()
  for (const v of list(spec.volumes)) {
    if (volumes.has(String(v.name))) problems.push(`${where}: two volumes named ${String(v.name)}`)
    volumes.add(String(v.name))
  }
  for (const c of [...init, ...main]) {
    for (const m of list(c.volumeMounts)) {
      if (!volumes.has(String(m.name)))
        problems.push(`${where}: ${String(c.name)} mounts missing volume ${String(m.name)}`)
    }
  }
  return problems
}

/** The `restricted` Pod Security level's rules for one container (plus the pod's, which it inherits). */
export function restrictedProblems(container: Obj, podSecurity: Obj = {}): string[] {
  const sc = (container.securityContext ?? {}) as Obj
  const problems: string[] = []
  const name = String(container.name)
  if ((sc.runAsNonRoot ?? podSecurity.runAsNonRoot) !== true)
    problems.push(`${name}: runAsNonRoot is not true`)
  if ((sc.runAsUser ?? podSecurity.runAsUser) === 0) problems.push(`${name}: runs as uid 0`)
  if (sc.allowPrivilegeEscalation !== false) problems.push(`${name}: allowPrivilegeEscalation is not false`)
  if (sc.privileged === true) problems.push(`${name}: privileged`)
  const caps = (sc.capabilities ?? {}) as Obj
  if (!list(caps.drop).includes('ALL' as unknown as Obj))
    problems.push(`${name}: capabilities do not drop ALL`)
  const added = list(caps.add).filter((c) => (c as unknown) !== 'NET_BIND_SERVICE')
  if (added.length > 0) problems.push(`${name}: adds capabilities`)
  const seccomp = ((sc.seccompProfile ?? podSecurity.seccompProfile) as Obj | undefined)?.type
  if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost')
    problems.push(`${name}: seccompProfile is not RuntimeDefault`)
  return problems
}

export function restrictedVolumeProblems(spec: Obj): string[] {
  return list(spec.volumes)
    .filter((v) => !Object.keys(v).some((k) => k !== 'name' && RESTRICTED_VOLUMES.includes(k)))
    .map((v) => `volume ${String(v.name)}: its type is not allowed by the restricted level`)
}

/** Validates a pod against the Kubernetes OpenAPI schema (kubernetes-models); throws with JSON pointers. */
export function validatePod(pod: Obj): void {
  new Pod(pod as ConstructorParameters<typeof Pod>[0]).validate()
}
