/**
 * Where the pod is in each kind of object the injector handles: a Pod is
 * one, the workload controllers hold a template. The webhook only ever sees
 * Pods; the offline `svidecar inject` sees the manifests people write.
 */

interface KindInfo {
  apiVersions: readonly string[]
  /** Path from the object's root to the pod (an object with metadata and spec). */
  pod: readonly string[]
}

const KINDS: Readonly<Record<string, KindInfo>> = {
  Pod: { apiVersions: ['v1'], pod: [] },
  Deployment: { apiVersions: ['apps/v1'], pod: ['spec', 'template'] },
  StatefulSet: { apiVersions: ['apps/v1'], pod: ['spec', 'template'] },
  DaemonSet: { apiVersions: ['apps/v1'], pod: ['spec', 'template'] },
  ReplicaSet: { apiVersions: ['apps/v1'], pod: ['spec', 'template'] },
  ReplicationController: { apiVersions: ['v1'], pod: ['spec', 'template'] },
  Job: { apiVersions: ['batch/v1'], pod: ['spec', 'template'] },
  CronJob: { apiVersions: ['batch/v1'], pod: ['spec', 'jobTemplate', 'spec', 'template'] },
}

export const HANDLED_KINDS: readonly string[] = Object.keys(KINDS)

/** The path to the pod inside an object of this kind, or undefined for a kind we do not inject. */
export function podPath(apiVersion: unknown, kind: unknown): readonly string[] | undefined {
  if (typeof kind !== 'string' || typeof apiVersion !== 'string') return undefined
  const info = KINDS[kind]
  return info?.apiVersions.includes(apiVersion) ? info.pod : undefined
}
