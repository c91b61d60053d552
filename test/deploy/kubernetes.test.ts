// deploy/kubernetes/ checked offline: kustomize renders each kustomization; every object validates against
// the Kubernetes OpenAPI schemas of a pinned release (kubernetes-models 5.1.0, and the cert-manager and
// Prometheus Operator models beside it); then what schemas miss: duplicate container names, restartPolicy
// placement, port and volume clashes, the restricted Pod Security level, references between objects. The
// example workloads are then run through `svidecar inject` and the injected output passes the same checks,
// and each sidecar's config loads with the environment the injector gives it.
import { execFile } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { parseAllDocuments } from 'yaml'
import {
  podSpecProblems,
  restrictedProblems,
  restrictedVolumeProblems,
} from '../../sidecar/test/helpers/pod-checks.ts'
import { REPO_ROOT } from '../harness/image.ts'
import { ensureKustomize } from '../harness/kustomize-install.ts'

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests walked freely in assertions
type Obj = Record<string, any>
const run = promisify(execFile)
const KUBERNETES = join(REPO_ROOT, 'deploy/kubernetes')
const SVIDECAR = join(REPO_ROOT, 'sidecar/bin/svidecar.js')
const SYSTEM_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease', 'svidecar-system']

async function render(dir: string): Promise<Obj[]> {
  const kustomize = await ensureKustomize()
  const { stdout } = await run(kustomize, ['build', join(KUBERNETES, dir)], { maxBuffer: 16 * 1024 * 1024 })
  return parseYamlStream(stdout)
}

function parseYamlStream(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw d.errors[0]
      return d.toJS() as Obj | null
    })
    .filter((o): o is Obj => o !== null)
}

/** The kubernetes-models class for an object, from the package that knows its API group. */
async function modelOf(o: Obj): Promise<(new (data: Obj) => { validate(): void }) | undefined> {
  const [group, version] = String(o.apiVersion).includes('/')
    ? String(o.apiVersion).split('/')
    : ['', o.apiVersion]
  const module =
    group === ''
      ? await import('kubernetes-models/v1')
      : group === 'cert-manager.io'
        ? await import(`@kubernetes-models/cert-manager/cert-manager.io/${version}`)
        : group === 'monitoring.coreos.com'
          ? await import(`@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}`)
          : group === 'spire.spiffe.io'
            ? undefined
            : await import(`kubernetes-models/${group}/${version}`)
  return module?.[o.kind as string]
}

/** ClusterSPIFFEID has no published model: its fields from spire-controller-manager's CRD reference. */
function clusterSpiffeIdProblems(o: Obj): string[] {
  const known = [
    'spiffeIDTemplate',
    'podSelector',
    'namespaceSelector',
    'dnsNameTemplates',
    'workloadSelectorTemplates',
    'ttl',
    'jwtTtl',
    'federatesWith',
    'admin',
    'downstream',
    'autoPopulateDNSNames',
    'fallback',
    'className',
    'hint',
  ]
  const problems = Object.keys(o.spec ?? {})
    .filter((k) => !known.includes(k))
    .map((k) => `unknown field spec.${k}`)
  if (typeof o.spec?.spiffeIDTemplate !== 'string') problems.push('spec.spiffeIDTemplate is required')
  else if (!o.spec.spiffeIDTemplate.startsWith('spiffe://{{ .TrustDomain }}/'))
    problems.push('the ID is not in the trust domain')
  if (/PodMeta\.(Name|UID)\b/.test(o.spec?.spiffeIDTemplate ?? '')) problems.push('a SPIFFE ID per pod')
  return problems
}

async function validateAll(t: Test, objects: Obj[]): Promise<void> {
  for (const o of objects) {
    const what = `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`
    if (o.kind === 'ClusterSPIFFEID') {
      t.same(clusterSpiffeIdProblems(o), [], `${what}: fields of the ClusterSPIFFEID CRD`)
      continue
    }
    const Model = await modelOf(o)
    t.ok(Model, `${what}: a schema is known for ${o.apiVersion}`)
    if (Model !== undefined)
      t.doesNotThrow(() => new Model(o).validate(), `${what}: valid against the schema`)
  }
}

/** The pod inside a workload object, if it is one. */
function podOf(o: Obj): Obj | undefined {
  if (o.kind === 'Pod') return o
  if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(o.kind)) return o.spec.template
  if (o.kind === 'CronJob') return o.spec.jobTemplate.spec.template
  return undefined
}

function checkPods(t: Test, objects: Obj[], namespaces: Map<string, Obj>): void {
  for (const o of objects) {
    const pod = podOf(o)
    if (pod === undefined) continue
    const what = `${o.kind} ${o.metadata.name}`
    t.same(podSpecProblems(pod.spec), [], `${what}: no problems the schema misses`)
    const level = namespaces.get(o.metadata.namespace)?.metadata.labels?.[
      'pod-security.kubernetes.io/enforce'
    ]
    t.equal(level, 'restricted', `${what}: its namespace enforces the restricted level`)
    for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
      t.same(restrictedProblems(c, pod.spec.securityContext), [], `${what}: ${c.name} passes restricted`)
    }
    t.same(restrictedVolumeProblems(pod.spec), [], `${what}: volumes allowed by restricted`)
  }
}

function byKind(objects: Obj[], kind: string): Obj[] {
  return objects.filter((o) => o.kind === kind)
}

/** The one object of a kind; throws when there is none. */
function one(objects: Obj[], kind: string): Obj {
  const found = byKind(objects, kind)[0]
  if (found === undefined) throw new Error(`no ${kind} rendered`)
  return found
}

t.test('the injector renders, validates, and its parts agree', async (t) => {
  const objects = await render('injector')
  await validateAll(t, objects)
  const namespaces = new Map(byKind(objects, 'Namespace').map((n) => [n.metadata.name, n]))
  checkPods(t, objects, namespaces)

  const deployment = one(objects, 'Deployment')
  const service = one(objects, 'Service')
  const config = one(objects, 'MutatingWebhookConfiguration')
  const container = deployment.spec.template.spec.containers[0]
  t.ok(deployment.spec.replicas >= 2, 'two replicas: failurePolicy Fail must not hang on one pod')
  t.equal(byKind(objects, 'PodDisruptionBudget')[0]?.spec.minAvailable, 1)
  t.equal(service.spec.ports[0].targetPort, container.ports[0].name, 'the Service reaches the webhook port')
  t.same(service.spec.selector, deployment.spec.selector.matchLabels)
  t.equal(
    deployment.spec.template.spec.automountServiceAccountToken,
    false,
    'the injector needs no API token',
  )

  const certs = byKind(objects, 'Certificate')
  const serving = certs.find(
    (c) => c.spec.secretName === deployment.spec.template.spec.volumes[0].secret.secretName,
  )
  t.ok(serving, 'the mounted Secret is a cert-manager Certificate')
  t.ok(
    serving?.spec.dnsNames.includes(`${service.metadata.name}.${service.metadata.namespace}.svc`),
    'for the Service name',
  )
  t.equal(
    config.metadata.annotations['cert-manager.io/inject-ca-from'],
    `${serving?.metadata.namespace}/${serving?.metadata.name}`,
  )
  const mount = container.volumeMounts[0].mountPath
  t.ok(
    container.args.includes(`--tls-cert=${mount}/tls.crt`) &&
      container.args.includes(`--tls-key=${mount}/tls.key`),
  )

  t.equal(config.webhooks.length, 2)
  for (const w of config.webhooks) {
    t.same(w.admissionReviewVersions, ['v1'], `${w.name}: v1 only`)
    t.equal(w.sideEffects, 'None')
    t.equal(w.failurePolicy, 'Fail', `${w.name}: fail closed`)
    t.ok(w.timeoutSeconds <= 10, `${w.name}: a short timeout`)
    t.equal(w.reinvocationPolicy, 'IfNeeded')
    t.same(w.clientConfig.service, {
      name: service.metadata.name,
      namespace: service.metadata.namespace,
      path: '/inject',
      port: service.spec.ports[0].port,
    })
    t.same(w.rules, [
      {
        operations: ['CREATE'],
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['pods'],
        scope: 'Namespaced',
      },
    ])
    const excluded = w.namespaceSelector.matchExpressions.find(
      (e: Obj) => e.key === 'kubernetes.io/metadata.name',
    )
    t.same(
      excluded,
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: SYSTEM_NAMESPACES },
      `${w.name}: never the control plane or itself`,
    )
  }
  t.ok(
    container.args.includes('--exclude-namespace=$(POD_NAMESPACE)'),
    'the injector excludes its own namespace too',
  )
  t.equal(
    byKind(objects, 'ValidatingAdmissionPolicyBinding')[0]?.spec.policyName,
    byKind(objects, 'ValidatingAdmissionPolicy')[0]?.metadata.name,
  )
})

t.test('the PodMonitor renders and validates', async (t) => {
  const objects = await render('monitoring')
  await validateAll(t, objects)
  const monitor = one(objects, 'PodMonitor')
  t.equal(monitor.spec.podMetricsEndpoints[0].port, 'svidecar-admin', 'scrapes the port the injector names')
  t.same(monitor.spec.namespaceSelector, { any: true })
})

t.test('the examples render, validate, and stay valid once injected', async (t) => {
  const objects = await render('examples')
  await validateAll(t, objects)
  const namespaces = new Map(byKind(objects, 'Namespace').map((n) => [n.metadata.name, n]))
  checkPods(t, objects, namespaces)
  for (const n of namespaces.values())
    t.equal(n.metadata.labels['svidecar.io/inject'], 'enabled', `${n.metadata.name} opted in`)

  const dir = t.testdir()
  const input = join(dir, 'rendered.yaml')
  const output = join(dir, 'injected.yaml')
  const { stdout } = await run(await ensureKustomize(), ['build', join(KUBERNETES, 'examples')])
  writeFileSync(input, stdout)
  await run(process.execPath, ['--conditions=svidecar-source', SVIDECAR, 'inject', '-f', input, '-o', output])
  const { readFileSync } = await import('node:fs')
  const injected = parseYamlStream(readFileSync(output, 'utf8'))
  t.equal(injected.length, objects.length, 'every document is still there')
  await validateAll(t, injected)
  checkPods(t, injected, namespaces)
  const unchanged = injected.filter(
    (o, i) => podOf(o) === undefined && JSON.stringify(o) === JSON.stringify(objects[i]),
  )
  t.equal(
    unchanged.length,
    objects.filter((o) => podOf(o) === undefined).length,
    'the other objects are unchanged',
  )

  const configMaps = byKind(objects, 'ConfigMap')
  for (const o of byKind(injected, 'Deployment')) {
    await t.test(`${o.metadata.namespace}/${o.metadata.name}`, async (t) => {
      const pod = podOf(o) as Obj
      const [sidecar] = pod.spec.initContainers
      t.equal(sidecar.name, 'svidecar')
      t.equal(sidecar.restartPolicy, 'Always')
      const volume = pod.spec.volumes.find((v: Obj) => v.name === 'svidecar-config')
      const configMap = configMaps.find(
        (c) => c.metadata.name === volume.configMap.name && c.metadata.namespace === o.metadata.namespace,
      )
      t.ok(configMap, 'the ConfigMap the pod names exists in its namespace')
      if (configMap === undefined) return
      // The sidecar's view: the ConfigMap's files where it mounts them, the environment the injector set.
      const mount = sidecar.volumeMounts.find((m: Obj) => m.name === 'svidecar-config').mountPath
      const root = join(dir, o.metadata.name)
      mkdirSync(root, { recursive: true })
      for (const [file, text] of Object.entries(configMap.data as Record<string, string>)) {
        writeFileSync(join(root, file), text.replaceAll(`${mount}/`, `${root}/`))
      }
      const env = Object.fromEntries(sidecar.env.map((e: Obj) => [e.name, e.value]))
      const configFile = sidecar.args[sidecar.args.indexOf('--config') + 1].replace(`${mount}/`, `${root}/`)
      const { stdout } = await run(
        process.execPath,
        ['--conditions=svidecar-source', SVIDECAR, 'config', 'check', configFile],
        {
          env: { PATH: process.env.PATH ?? '', ...env },
        },
      )
      t.match(stdout, /: ok \(/, 'the config loads with the injected environment')
    })
  }
  const agent = podOf(
    injected.find((o) => o.metadata?.name === 'agent' && o.kind === 'Deployment') as Obj,
  ) as Obj
  t.same(agent.spec.containers[0].env, [
    { name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:15001/v1' },
    { name: 'MCP_SERVER_URL', value: 'http://127.0.0.1:15001/mcp' },
  ])
})

t.test('the checks catch what the schemas let through', async (t) => {
  const spec = (extra: Obj) => ({ containers: [{ name: 'a', image: 'a' }], ...extra })
  t.match(
    podSpecProblems(
      spec({
        containers: [
          { name: 'a', image: 'a' },
          { name: 'a', image: 'b' },
        ],
      }),
    ),
    [/two containers named a/],
  )
  t.match(podSpecProblems(spec({ containers: [{ name: 'a', image: 'a', restartPolicy: 'Always' }] })), [
    /only allowed as Always on an init container/,
  ])
  t.match(podSpecProblems(spec({ initContainers: [{ name: 'i', image: 'i', restartPolicy: 'Never' }] })), [
    /only allowed as Always/,
  ])
  t.match(
    podSpecProblems(
      spec({
        initContainers: [
          { name: 'i', image: 'i', restartPolicy: 'Always', ports: [{ name: 'admin', containerPort: 1 }] },
        ],
        containers: [{ name: 'a', image: 'a', ports: [{ name: 'admin', containerPort: 2 }] }],
      }),
    ),
    [/port name admin in i and a/],
  )
  t.match(podSpecProblems(spec({ containers: [{ name: 'Bad_Name', image: 'a' }] })), [/not a DNS label/])
  t.match(restrictedProblems({ name: 'x', securityContext: {} }), [
    /runAsNonRoot/,
    /allowPrivilegeEscalation/,
    /capabilities/,
    /seccomp/,
  ])
})
