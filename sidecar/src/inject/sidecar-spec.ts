/**
 * The pieces the injector adds to a pod: the svidecar container, its
 * volumes, and the environment app containers get. Everything the sidecar
 * needs (Workload API socket, config, provider keys) is mounted into the
 * sidecar only; app containers get nothing but base URLs on loopback.
 */
import type { JsonObject } from './json-patch.ts'
import { ADMIN_PORT_NAME, MOUNTS, SIDECAR_NAME, SIDECAR_UID, VOLUMES } from './names.ts'
import type { PodOptions } from './options.ts'

/**
 * Passes the `restricted` Pod Security level on its own, whatever the pod
 * sets: mutating admission runs before Pod Security admission checks the pod.
 */
export function securityContext(): JsonObject {
  return {
    runAsNonRoot: true,
    runAsUser: SIDECAR_UID,
    runAsGroup: SIDECAR_UID,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  }
}

function probe(path: string, periodSeconds: number, failureThreshold: number): JsonObject {
  return {
    httpGet: { path, port: ADMIN_PORT_NAME, scheme: 'HTTP' },
    periodSeconds,
    timeoutSeconds: 2,
    failureThreshold,
  }
}

// The image's Node (distroless: /nodejs/bin/node, the Dockerfile's ENTRYPOINT).
const NODE = '/nodejs/bin/node'
const CLASSIC_DRAIN_DELAY_MS = 5000

export function sidecarContainer(o: PodOptions): JsonObject {
  const socket = `unix://${MOUNTS.workloadApi}/${o.socketName}`
  const container: JsonObject = {
    name: SIDECAR_NAME,
    image: o.image,
    imagePullPolicy: o.imagePullPolicy,
    args: ['run', '--config', `${MOUNTS.config}/svidecar.yaml`],
    ports: [{ name: ADMIN_PORT_NAME, containerPort: o.adminPort, protocol: 'TCP' }],
    env: [
      // Over workloadApi.socket in the config: the injector decides where the socket is mounted.
      { name: 'SVIDECAR_WORKLOAD_API_SOCKET', value: socket },
      { name: 'SPIFFE_ENDPOINT_SOCKET', value: socket },
      // The kubelet probes and Prometheus scrapes the pod IP, so the admin listener cannot stay on loopback; `[::]`
      // takes an IPv6 pod IP as well as an IPv4 one (IPv4 only on a node without IPv6).
      { name: 'SVIDECAR_ADMIN_ADDRESS', value: `[::]:${o.adminPort}` },
    ],
    // The app starts only once this passes (native mode): an SVID is held and the listeners are up.
    startupProbe: probe('/readyz', 1, 120),
    readinessProbe: probe('/readyz', 5, 3),
    livenessProbe: probe('/healthz', 10, 3),
    resources: structuredClone(o.resources) as unknown as JsonObject,
    securityContext: securityContext(),
    terminationMessagePolicy: 'FallbackToLogsOnError',
    volumeMounts: [
      { name: VOLUMES.workloadApi, mountPath: MOUNTS.workloadApi, readOnly: true },
      { name: VOLUMES.config, mountPath: MOUNTS.config, readOnly: true },
      { name: VOLUMES.tmp, mountPath: MOUNTS.tmp },
    ],
  }
  if (o.secret !== undefined) {
    // Provider keys as environment of the sidecar alone; a missing Secret keeps the pod from starting.
    container.envFrom = [{ secretRef: { name: o.secret } }]
  }
  if (o.mode === 'native') {
    // KEP-753: an init container that keeps running; it starts first and stops after the app.
    container.restartPolicy = 'Always'
  } else {
    // A regular container gets SIGTERM with the app and would stop accepting at once, failing the calls the app
    // makes while it shuts down: hold the sidecar's SIGTERM back for a while, as Istio does for its proxy
    // (terminationDrainDuration). The image has no shell, and preStop.sleep needs a newer cluster than this
    // mode is for; its own Node waits. With drainTimeout's 20 s this stays inside the default 30 s grace period.
    container.lifecycle = {
      preStop: { exec: { command: [NODE, '-e', `setTimeout(() => {}, ${CLASSIC_DRAIN_DELAY_MS})`] } },
    }
  }
  return container
}

export function sidecarVolumes(o: PodOptions): JsonObject[] {
  const workloadApi: JsonObject =
    o.workloadApi === 'csi'
      ? { name: VOLUMES.workloadApi, csi: { driver: 'csi.spiffe.io', readOnly: true } }
      : // Refused by the baseline and restricted Pod Security levels: dev clusters only.
        { name: VOLUMES.workloadApi, hostPath: { path: o.hostPathDir, type: 'Directory' } }
  return [
    workloadApi,
    { name: VOLUMES.config, configMap: { name: o.configMap } },
    { name: VOLUMES.tmp, emptyDir: { sizeLimit: '64Mi' } },
  ]
}

/** The app's base URLs, pointing at the sidecar's outbound listener on loopback. */
export function outboundEnv(o: PodOptions): { name: string; value: string }[] {
  return o.outboundEnv.map((e) => ({ name: e.name, value: `http://127.0.0.1:${o.outboundPort}${e.path}` }))
}

/** The ports the sidecar binds in the pod's network namespace, which no app container may claim. */
export function sidecarPorts(o: PodOptions): number[] {
  return [o.adminPort, o.outboundPort]
}
