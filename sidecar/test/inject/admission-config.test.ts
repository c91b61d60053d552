// What the API server does with deploy/kubernetes/injector before the injector sees a pod: the namespace and
// object selectors of each webhook entry, then its CEL matchConditions (evaluated with @bufbuild/cel, a CEL
// implementation; Kubernetes's own is Go and cannot run here), then the ValidatingAdmissionPolicy backstop.
// Each case says which pods reach the injector and which are rejected without a sidecar.
import { readFileSync } from 'node:fs'
import { celEnv, isCelError, parse, plan } from '@bufbuild/cel'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { inject } from '../../src/inject/inject.ts'
import { DEFAULT_OPTIONS } from '../../src/inject/options.ts'

// biome-ignore lint/suspicious/noExplicitAny: manifests walked freely
type Obj = Record<string, any>
type Labels = Record<string, string>
const DIR = new URL('../../../deploy/kubernetes/injector/', import.meta.url)
const load = (file: string): Obj[] =>
  parseAllDocuments(readFileSync(new URL(file, DIR), 'utf8')).map((d) => d.toJS())
const [webhookConfig] = load('mutatingwebhook.yaml') as [Obj]
const [vap, binding] = load('validatingpolicy.yaml') as [Obj, Obj]

function toCel(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toCel)
  if (v !== null && typeof v === 'object') return new Map(Object.entries(v).map(([k, x]) => [k, toCel(x)]))
  if (typeof v === 'number') return BigInt(v)
  return v
}

const env = celEnv({})
function cel(expression: string, bindings: Record<string, unknown>): boolean {
  const result = (plan(env, parse(expression)) as (b: unknown) => unknown)(bindings)
  if (isCelError(result) || typeof result !== 'boolean') throw new Error(`${expression}: ${String(result)}`)
  return result
}

/** metav1.LabelSelector semantics. */
function selects(selector: Obj | undefined, labels: Labels): boolean {
  if (selector === undefined) return true
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key)
    const ok =
      e.operator === 'In'
        ? has && e.values.includes(labels[e.key])
        : e.operator === 'NotIn'
          ? !has || !e.values.includes(labels[e.key])
          : e.operator === 'Exists'
            ? has
            : !has
    if (!ok) return false
  }
  return true
}

interface Case {
  name: string
  namespace: Labels
  labels?: Labels
  annotations?: Labels
  hostNetwork?: boolean
}

function podFor(c: Case): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'p-',
      ...(c.labels ? { labels: c.labels } : {}),
      ...(c.annotations ? { annotations: c.annotations } : {}),
    },
    spec: { containers: [{ name: 'app', image: 'a' }], ...(c.hostNetwork ? { hostNetwork: true } : {}) },
  }
}

/** The webhook entries the API server would call for this pod. */
function called(c: Case): string[] {
  const object = toCel(podFor(c))
  return webhookConfig.webhooks
    .filter(
      (w: Obj) => selects(w.namespaceSelector, c.namespace) && selects(w.objectSelector, c.labels ?? {}),
    )
    .filter((w: Obj) => (w.matchConditions ?? []).every((m: Obj) => cel(m.expression, { object })))
    .map((w: Obj) => w.name)
}

/** Whether the backstop policy rejects this pod as created. */
function rejected(pod: Obj, namespace: Labels): boolean {
  if (!selects(binding.spec.matchResources.namespaceSelector, namespace)) return false
  const object = toCel(pod)
  const variables = new Map<string, unknown>()
  for (const v of vap.spec.variables) variables.set(v.name, cel(v.expression, { object, variables }))
  return !vap.spec.validations.every((v: Obj) => cel(v.expression, { object, variables }))
}

const ns = (name: string, labels: Labels = {}): Labels => ({ 'kubernetes.io/metadata.name': name, ...labels })
const enabledNs = ns('agents', { 'svidecar.io/inject': 'enabled' })

const CASES: [Case, string[]][] = [
  [{ name: 'namespace opted in', namespace: enabledNs }, ['namespace.inject.svidecar.io']],
  [
    {
      name: 'namespace opted in, pod label opt-out',
      namespace: enabledNs,
      labels: { 'svidecar.io/inject': 'disabled' },
    },
    [],
  ],
  [
    {
      name: 'namespace opted in, pod annotation opt-out',
      namespace: enabledNs,
      annotations: { 'svidecar.io/inject': 'false' },
    },
    [],
  ],
  [{ name: 'namespace opted in, hostNetwork', namespace: enabledNs, hostNetwork: true }, []],
  [{ name: 'plain namespace, plain pod', namespace: ns('default') }, []],
  [
    {
      name: 'plain namespace, pod label opt-in',
      namespace: ns('default'),
      labels: { 'svidecar.io/inject': 'enabled' },
    },
    ['pod.inject.svidecar.io'],
  ],
  [
    {
      name: 'plain namespace, pod annotation opt-in',
      namespace: ns('default'),
      annotations: { 'svidecar.io/inject': 'true' },
    },
    ['pod.inject.svidecar.io'],
  ],
  [
    {
      name: 'namespace opted out, pod opts in',
      namespace: ns('legacy', { 'svidecar.io/inject': 'disabled' }),
      labels: { 'svidecar.io/inject': 'enabled' },
    },
    [],
  ],
  [
    {
      name: 'kube-system labelled by mistake',
      namespace: ns('kube-system', { 'svidecar.io/inject': 'enabled' }),
    },
    [],
  ],
  [
    {
      name: "the injector's own namespace",
      namespace: ns('svidecar-system'),
      annotations: { 'svidecar.io/inject': 'enabled' },
    },
    [],
  ],
]

for (const [c, expected] of CASES) {
  t.test(c.name, async (t) => {
    const entries = called(c)
    t.same(entries, expected, 'the webhook entries the API server calls')
    const pod = podFor(c)
    // What gets created: the injector's patch when called, the pod as it is otherwise.
    const created = entries.length > 0 ? inject(pod, DEFAULT_OPTIONS, { namespaceOptedIn: true }).object : pod
    if (entries.length > 0) t.ok(JSON.stringify(created).includes('"name":"svidecar"'), 'injected')
    t.equal(rejected(created, c.namespace), false, 'the backstop admits it')
  })
}

t.test('the backstop rejects a pod that slipped past the injector in an opted-in namespace', async (t) => {
  t.equal(rejected(podFor({ name: '', namespace: enabledNs }), enabledNs), true)
  t.equal(
    rejected(podFor({ name: '', namespace: ns('default') }), ns('default')),
    false,
    'only in opted-in namespaces',
  )
  const classic = inject(
    podFor({ name: '', namespace: enabledNs }),
    { ...DEFAULT_OPTIONS, mode: 'container' },
    { namespaceOptedIn: true },
  )
  t.equal(rejected(classic.object, enabledNs), false, 'a classic sidecar counts too')
})

// The API server compares label and annotation values exactly (selectors, CEL `in`), so the injector must too:
// a value it read differently would inject where the cluster says no, or skip a pod the backstop then rejects
// with a message that blames a missing injector.
t.test('switch values the API server does not know are refused, not guessed', async (t) => {
  for (const value of ['Disabled', 'FALSE', ' enabled', 'True']) {
    const c: Case = { name: value, namespace: enabledNs, labels: { 'svidecar.io/inject': value } }
    t.same(called(c), ['namespace.inject.svidecar.io'], `${JSON.stringify(value)}: the API server calls`)
    t.throws(
      () => inject(podFor(c), DEFAULT_OPTIONS, { namespaceOptedIn: true }),
      { code: 'SVD_INJECT_INVALID', message: /svidecar\.io\/inject/ },
      `${JSON.stringify(value)}: refused with the reason, not read as a switch`,
    )
  }
})

// README: "a label wins over an annotation", in the cluster as in `svidecar inject`.
t.test('a pod label wins over the pod annotation in the selectors and the backstop too', async (t) => {
  const cases: [Case, boolean][] = [
    [
      {
        name: 'opted-in namespace, label enabled, annotation disabled',
        namespace: enabledNs,
        labels: { 'svidecar.io/inject': 'enabled' },
        annotations: { 'svidecar.io/inject': 'disabled' },
      },
      true,
    ],
    [
      {
        name: 'plain namespace, label enabled, annotation false',
        namespace: ns('default'),
        labels: { 'svidecar.io/inject': 'enabled' },
        annotations: { 'svidecar.io/inject': 'false' },
      },
      true,
    ],
    [
      {
        name: 'opted-in namespace, label disabled, annotation enabled',
        namespace: enabledNs,
        labels: { 'svidecar.io/inject': 'disabled' },
        annotations: { 'svidecar.io/inject': 'enabled' },
      },
      false,
    ],
  ]
  for (const [c, injected] of cases) {
    const pod = podFor(c)
    const offline = inject(pod, DEFAULT_OPTIONS, { namespaceOptedIn: c.namespace === enabledNs })
    t.equal(offline.injected, injected, `${c.name}: svidecar inject`)
    const entries = called(c)
    const created = entries.length > 0 ? inject(pod, DEFAULT_OPTIONS, { namespaceOptedIn: true }).object : pod
    t.equal(JSON.stringify(created).includes('"name":"svidecar"'), injected, `${c.name}: the cluster`)
    t.equal(rejected(created, c.namespace), false, `${c.name}: the backstop admits it`)
    if (!injected) continue
    // A pod without the sidecar whose label asks for it is one the backstop must still catch.
    t.equal(
      rejected(pod, c.namespace),
      c.namespace === enabledNs,
      `${c.name}: the backstop without a sidecar`,
    )
  }
})

// An injected sidecar waits for its SVID before the app may start (startup probe on /readyz), so a pod the
// cluster injects that no ClusterSPIFFEID selects never starts. spire-controller-manager selects pods by
// namespace and pod labels only: an opt-in by annotation must reach a label.
t.test('every pod the cluster injects is registered by an example ClusterSPIFFEID', async (t) => {
  const ids = parseAllDocuments(
    readFileSync(
      new URL('../../../deploy/kubernetes/examples/clusterspiffeids.yaml', import.meta.url),
      'utf8',
    ),
  ).map((d) => d.toJS() as Obj)
  const cases: Case[] = [
    ...CASES.map(([c]) => c),
    {
      name: 'plain namespace, annotation enabled',
      namespace: ns('default'),
      annotations: { 'svidecar.io/inject': 'enabled' },
    },
    {
      name: 'plain namespace, annotation true',
      namespace: ns('default'),
      annotations: { 'svidecar.io/inject': 'true' },
    },
    {
      name: 'plain namespace, label disabled, annotation enabled',
      namespace: ns('default'),
      labels: { 'svidecar.io/inject': 'disabled' },
      annotations: { 'svidecar.io/inject': 'enabled' },
    },
  ]
  for (const c of cases) {
    if (called(c).length === 0) continue
    const r = inject(podFor(c), DEFAULT_OPTIONS, { namespaceOptedIn: true })
    if (!r.injected) continue
    const labels = (r.object.metadata as Obj | undefined)?.labels ?? {}
    const by = ids.filter(
      (id) => selects(id.spec.namespaceSelector, c.namespace) && selects(id.spec.podSelector, labels),
    )
    t.equal(by.length, 1, `${c.name}: registered by one ClusterSPIFFEID`)
    t.same(inject(r.object, DEFAULT_OPTIONS, { namespaceOptedIn: true }).patch, [], `${c.name}: idempotent`)
  }
})
