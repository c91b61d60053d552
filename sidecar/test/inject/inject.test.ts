// The pure injector: every patch is applied with fast-json-patch (a maintained RFC 6902 implementation, not
// ours), the result is validated against the Kubernetes schemas (kubernetes-models) and the checks schemas
// miss, and fed back in to prove a second injection changes nothing.

import { readFileSync } from 'node:fs'
import jsonpatch from 'fast-json-patch'
import t, { type Test } from 'tap'
import { isSvidecarError } from '../../src/errors/index.ts'
import { type InjectContext, inject } from '../../src/inject/inject.ts'
import { DEFAULT_OPTIONS, type InjectorOptions } from '../../src/inject/options.ts'
import {
  podSpecProblems,
  restrictedProblems,
  restrictedVolumeProblems,
  validatePod,
} from '../helpers/pod-checks.ts'

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects walked freely in assertions
type Obj = Record<string, any>
const OPTED_IN: InjectContext = { namespaceOptedIn: true }

function pod(extra: { metadata?: Obj; spec?: Obj } = {}): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'agent', ...extra.metadata },
    spec: { containers: [{ name: 'app', image: 'agent:1' }], ...extra.spec },
  }
}

/** Injects, applies the patch with fast-json-patch, checks it matches the injector's own result, returns it. */
function injectAndApply(
  t: Test,
  object: Obj,
  options: InjectorOptions = DEFAULT_OPTIONS,
  context = OPTED_IN,
): Obj {
  const before = structuredClone(object)
  const result = inject(object, options, context)
  t.same(object, before, 'the input is not modified')
  t.ok(result.injected, `injected (${result.reason})`)
  t.equal(
    jsonpatch.validate(result.patch as jsonpatch.Operation[], structuredClone(object)),
    undefined,
    'the patch is valid RFC 6902 for the object',
  )
  const patched = jsonpatch.applyPatch(
    structuredClone(object),
    result.patch as jsonpatch.Operation[],
    true,
    false,
  ).newDocument
  t.same(patched, result.object, 'the patch gives the object the injector reports')
  const again = inject(patched, options, context)
  t.same(again.patch, [], 'a second injection is an empty patch')
  t.equal(again.reason, 'already injected')
  return patched
}

function podOf(object: Obj, path: string[]): Obj {
  return path.reduce((n, k) => n[k], object)
}

function checkPod(t: Test, p: Obj): void {
  t.doesNotThrow(
    () => validatePod({ apiVersion: 'v1', kind: 'Pod', metadata: p.metadata ?? {}, spec: p.spec }),
    'valid against the Kubernetes schema',
  )
  t.same(podSpecProblems(p.spec), [], 'no problems the schema misses')
  const sidecar = [...(p.spec.initContainers ?? []), ...p.spec.containers].find(
    (c: Obj) => c.name === 'svidecar',
  )
  t.same(restrictedProblems(sidecar), [], 'the sidecar passes the restricted Pod Security level')
}

t.test('a bare pod gets a native sidecar that starts first and is ready before the app', async (t) => {
  const p = injectAndApply(t, pod())
  checkPod(t, p)
  const [sidecar] = p.spec.initContainers
  t.equal(sidecar.name, 'svidecar')
  t.equal(sidecar.restartPolicy, 'Always', 'KEP-753 native sidecar')
  t.same(sidecar.startupProbe.httpGet, { path: '/readyz', port: 'svidecar-admin', scheme: 'HTTP' })
  t.same(sidecar.ports, [{ name: 'svidecar-admin', containerPort: 15000, protocol: 'TCP' }])
  t.equal(sidecar.securityContext.readOnlyRootFilesystem, true)
  t.same(restrictedVolumeProblems(p.spec), [], 'CSI, ConfigMap and emptyDir volumes only')
  t.same(p.spec.volumes[0], {
    name: 'svidecar-workload-api',
    csi: { driver: 'csi.spiffe.io', readOnly: true },
  })
  t.same(
    p.spec.containers,
    pod().spec.containers,
    'the app container is untouched: no socket, no config, no env',
  )
  t.equal(
    Object.keys(p.metadata.annotations).find((k) => k.startsWith('prometheus.io/')),
    undefined,
    'kubernetes.md §4: no prometheus.io annotations unless asked for',
  )
  const status = JSON.parse(p.metadata.annotations['svidecar.io/status'])
  t.same(status.initContainers, ['svidecar'])
  t.same(status.volumes, ['svidecar-workload-api', 'svidecar-config', 'svidecar-tmp'])
})

t.test('existing initContainers, volumes and annotations are extended, not replaced', async (t) => {
  const object = pod({
    metadata: { annotations: { team: 'ai', 'svidecar.io/secret': 'provider-keys' } },
    spec: {
      initContainers: [{ name: 'migrate', image: 'migrate:1' }],
      volumes: [{ name: 'data', emptyDir: {} }],
    },
  })
  const p = injectAndApply(t, object)
  checkPod(t, p)
  t.same(
    p.spec.initContainers.map((c: Obj) => c.name),
    ['svidecar', 'migrate'],
    'the sidecar runs before the other init containers',
  )
  t.same(
    p.spec.volumes.map((v: Obj) => v.name),
    ['data', 'svidecar-workload-api', 'svidecar-config', 'svidecar-tmp'],
  )
  t.equal(p.metadata.annotations.team, 'ai')
  t.same(
    p.spec.initContainers[0].envFrom,
    [{ secretRef: { name: 'provider-keys' } }],
    'provider keys: the sidecar only',
  )
  t.notOk(JSON.stringify(p.spec.containers).includes('provider-keys'), 'the app never sees the Secret')
})

t.test('a pod with no metadata at all', async (t) => {
  const object = { apiVersion: 'v1', kind: 'Pod', spec: { containers: [{ name: 'app', image: 'a' }] } }
  const p = injectAndApply(t, object)
  t.ok(p.metadata.annotations['svidecar.io/status'])
})

t.test('classic mode (clusters before 1.29) appends a regular container', async (t) => {
  const object = pod({ metadata: { annotations: { 'svidecar.io/mode': 'container' } } })
  const p = injectAndApply(t, object)
  checkPod(t, p)
  t.equal(p.spec.initContainers, undefined)
  t.same(
    p.spec.containers.map((c: Obj) => c.name),
    ['app', 'svidecar'],
    'the app stays the default container',
  )
  t.equal(p.spec.containers[1].restartPolicy, undefined)
  const cluster = injectAndApply(t, pod(), { ...DEFAULT_OPTIONS, mode: 'container' })
  t.equal(cluster.spec.containers[1].name, 'svidecar', 'or for every pod by the injector option')
})

// A classic sidecar gets SIGTERM together with the app (no KEP-753 ordering) and would stop accepting at once,
// so an app that calls out while it shuts down fails; Istio delays its proxy (terminationDrainDuration, 5 s).
// The image has no shell and `preStop.sleep` needs 1.30, later than the clusters classic mode is for: the
// image's own Node waits instead.
t.test("classic mode delays the sidecar's SIGTERM; native mode needs no delay", async (t) => {
  const classic = injectAndApply(t, pod(), { ...DEFAULT_OPTIONS, mode: 'container' })
  checkPod(t, classic)
  const sidecar = classic.spec.containers[1]
  const command: string[] = sidecar.lifecycle?.preStop?.exec?.command ?? []
  const entrypoint = readFileSync(new URL('../../../Dockerfile', import.meta.url), 'utf8').match(
    /^ENTRYPOINT \["([^"]+)"/m,
  )?.[1]
  t.equal(command[0], entrypoint, "the image's Node")
  t.equal(command[1], '-e')
  t.doesNotThrow(() => new Function(command[2] ?? '('), 'the script is JavaScript')
  const seconds = Number(/setTimeout\(\(\) => \{\}, (\d+)\)/.exec(command[2] ?? '')?.[1]) / 1000
  t.ok(
    seconds >= 5 && seconds + 20 < 30,
    `${seconds} s: drained within the default grace period with drainTimeout`,
  )
  const native = injectAndApply(t, pod())
  t.equal(native.spec.initContainers[0].lifecycle, undefined, 'native: stopped after the app by the kubelet')
})

// A Job's pod ends when its containers do; a classic sidecar never exits on its own, so the pod runs on and the
// Job never completes (the case native sidecars were made for, kubernetes.md 1.7). Said, not refused: the
// cluster may have no native sidecars.
t.test('classic mode warns on pods that run to completion', async (t) => {
  for (const restartPolicy of ['Never', 'OnFailure']) {
    const object = pod({ spec: { restartPolicy, containers: [{ name: 'app', image: 'a' }] } })
    const classic = inject(object, { ...DEFAULT_OPTIONS, mode: 'container' }, OPTED_IN)
    t.ok(classic.injected)
    t.match(classic.warnings, [
      /restartPolicy .*: the classic sidecar keeps the pod running.*svidecar\.io\/mode/,
    ])
    t.same(
      inject(object, DEFAULT_OPTIONS, OPTED_IN).warnings,
      [],
      `${restartPolicy}: native mode stops with the app`,
    )
  }
  t.same(
    inject(pod(), { ...DEFAULT_OPTIONS, mode: 'container' }, OPTED_IN).warnings,
    [],
    'Always: nothing to say',
  )
})

t.test('hostPath socket on request; it fails the restricted level, which the test shows', async (t) => {
  const p = injectAndApply(t, pod({ metadata: { annotations: { 'svidecar.io/workload-api': 'hostPath' } } }))
  t.same(p.spec.volumes[0], {
    name: 'svidecar-workload-api',
    hostPath: { path: '/run/spire/agent-sockets', type: 'Directory' },
  })
  t.same(restrictedVolumeProblems(p.spec), [
    'volume svidecar-workload-api: its type is not allowed by the restricted level',
  ])
})

t.test('outbound base URLs for the app containers when asked', async (t) => {
  const object = pod({
    metadata: {
      annotations: {
        'svidecar.io/outbound-env': 'openai, anthropic, MCP_SERVER_URL=/mcp',
        'svidecar.io/outbound-port': '16001',
      },
    },
    spec: {
      containers: [
        { name: 'app', image: 'a', env: [{ name: 'ANTHROPIC_BASE_URL', value: 'https://mine' }] },
        { name: 'tool', image: 'b' },
      ],
    },
  })
  const result = inject(object, DEFAULT_OPTIONS, OPTED_IN)
  const p = injectAndApply(t, object)
  checkPod(t, p)
  t.same(p.spec.containers[0].env, [
    { name: 'ANTHROPIC_BASE_URL', value: 'https://mine' },
    { name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:16001/v1' },
    { name: 'MCP_SERVER_URL', value: 'http://127.0.0.1:16001/mcp' },
  ])
  t.same(p.spec.containers[1].env, [
    { name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:16001/v1' },
    { name: 'ANTHROPIC_BASE_URL', value: 'http://127.0.0.1:16001' },
    { name: 'MCP_SERVER_URL', value: 'http://127.0.0.1:16001/mcp' },
  ])
  t.match(
    result.warnings,
    [/container app sets ANTHROPIC_BASE_URL itself/],
    'a value the app sets is kept, with a warning',
  )
  const sidecarEnv = p.spec.initContainers[0].env.map((e: Obj) => e.name)
  t.notOk(sidecarEnv.includes('OPENAI_BASE_URL'))
})

// Native sidecars start before the app's init containers so those can already call out through it (KEP-753
// ordering); they need the base URLs as much as the app does. A classic sidecar starts after every init
// container, so pointing one at it would only break it.
t.test('outbound base URLs for the init containers that run after a native sidecar', async (t) => {
  const object = pod({
    metadata: { annotations: { 'svidecar.io/outbound-env': 'openai' } },
    spec: {
      initContainers: [{ name: 'warm-up', image: 'w', env: [{ name: 'A', value: '1' }] }],
      containers: [{ name: 'app', image: 'a' }],
    },
  })
  const url = { name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:15001/v1' }
  const p = injectAndApply(t, object)
  checkPod(t, p)
  t.same(
    p.spec.initContainers.map((c: Obj) => c.name),
    ['svidecar', 'warm-up'],
  )
  t.same(
    p.spec.initContainers[1].env,
    [{ name: 'A', value: '1' }, url],
    'the init container after the sidecar',
  )
  t.same(p.spec.containers[0].env, [url])
  t.same(JSON.parse(p.metadata.annotations['svidecar.io/status']).env, {
    'warm-up': ['OPENAI_BASE_URL'],
    app: ['OPENAI_BASE_URL'],
  })
  const classic = injectAndApply(t, object, { ...DEFAULT_OPTIONS, mode: 'container' })
  t.same(classic.spec.initContainers[0].env, [{ name: 'A', value: '1' }], 'classic: nothing to call yet')
  t.same(classic.spec.containers[0].env, [url])
})

t.test('workload kinds: the pod template is injected', async (t) => {
  const template = { metadata: { labels: { app: 'a' } }, spec: { containers: [{ name: 'app', image: 'a' }] } }
  const cases: [string, string, Obj, string[]][] = [
    ['apps/v1', 'Deployment', { selector: { matchLabels: { app: 'a' } }, template }, ['spec', 'template']],
    [
      'apps/v1',
      'StatefulSet',
      { serviceName: 'a', selector: { matchLabels: { app: 'a' } }, template },
      ['spec', 'template'],
    ],
    ['apps/v1', 'DaemonSet', { selector: { matchLabels: { app: 'a' } }, template }, ['spec', 'template']],
    [
      'batch/v1',
      'Job',
      { template: { ...template, spec: { ...template.spec, restartPolicy: 'Never' } } },
      ['spec', 'template'],
    ],
    [
      'batch/v1',
      'CronJob',
      {
        schedule: '* * * * *',
        jobTemplate: {
          spec: { template: { ...template, spec: { ...template.spec, restartPolicy: 'OnFailure' } } },
        },
      },
      ['spec', 'jobTemplate', 'spec', 'template'],
    ],
  ]
  for (const [apiVersion, kind, spec, path] of cases) {
    await t.test(kind, async (t) => {
      const object = {
        apiVersion,
        kind,
        metadata: { name: 'w', namespace: 'ai' },
        spec: structuredClone(spec),
      }
      const patched = injectAndApply(t, object)
      const p = podOf(patched, path)
      checkPod(t, p)
      t.equal(p.spec.initContainers[0].name, 'svidecar')
      t.ok(p.metadata.annotations['svidecar.io/status'], 'the status is on the pod template')
      t.equal(patched.metadata.annotations, undefined, "the workload's own metadata is untouched")
    })
  }
})

t.test('opt-in and opt-out', async (t) => {
  const notIn: InjectContext = { namespaceOptedIn: false }
  t.equal(inject(pod(), DEFAULT_OPTIONS, notIn).reason, 'not opted in')
  injectAndApply(
    t,
    pod({ metadata: { annotations: { 'svidecar.io/inject': 'enabled' } } }),
    DEFAULT_OPTIONS,
    notIn,
  )
  injectAndApply(t, pod({ metadata: { labels: { 'svidecar.io/inject': 'true' } } }), DEFAULT_OPTIONS, notIn)
  for (const [where, value] of [
    ['labels', 'disabled'],
    ['annotations', 'false'],
  ]) {
    const r = inject(
      pod({ metadata: { [where as string]: { 'svidecar.io/inject': value } } }),
      DEFAULT_OPTIONS,
      OPTED_IN,
    )
    t.same([r.injected, r.reason, r.patch], [false, 'opted out', []], `${where} ${value}`)
  }
  const labelWins = pod({
    metadata: {
      labels: { 'svidecar.io/inject': 'disabled' },
      annotations: { 'svidecar.io/inject': 'enabled' },
    },
  })
  t.equal(
    inject(labelWins, DEFAULT_OPTIONS, OPTED_IN).reason,
    'opted out',
    'the label wins over the annotation',
  )
  // The API server's selectors compare exactly, so `False` is no switch there either (admission-config.test.ts).
  for (const value of ['flase', 'False']) {
    t.throws(
      () => inject(pod({ metadata: { labels: { 'svidecar.io/inject': value } } }), DEFAULT_OPTIONS, OPTED_IN),
      { code: 'SVD_INJECT_INVALID' },
      `${value}: a misspelt switch is refused, not guessed`,
    )
  }
  const host = inject(
    pod({ spec: { containers: [{ name: 'a', image: 'a' }], hostNetwork: true } }),
    DEFAULT_OPTIONS,
    OPTED_IN,
  )
  t.same([host.injected, host.patch], [false, []])
  t.match(host.warnings, [/hostNetwork/])
  const system = inject(pod(), DEFAULT_OPTIONS, { namespace: 'kube-system', namespaceOptedIn: true })
  t.same([system.injected, system.patch], [false, []], 'never in kube-system')
  const own = inject(
    pod({ metadata: { namespace: 'svidecar-system' } }),
    { ...DEFAULT_OPTIONS, excludedNamespaces: ['svidecar-system'] },
    OPTED_IN,
  )
  t.equal(own.injected, false, "never in the injector's own namespace")
})

t.test('already injected: status annotation, native or classic', async (t) => {
  for (const mode of ['native', 'container'] as const) {
    const once = inject(pod(), { ...DEFAULT_OPTIONS, mode }, OPTED_IN).object
    for (const other of ['native', 'container'] as const) {
      const r = inject(once, { ...DEFAULT_OPTIONS, mode: other }, OPTED_IN)
      t.same([r.injected, r.patch], [false, []], `${mode} then ${other}`)
    }
  }
})

t.test('refusals: a container, volume or port of ours that we did not inject', async (t) => {
  const refused = (object: Obj, code: string, pattern: RegExp) => {
    try {
      inject(object, DEFAULT_OPTIONS, OPTED_IN)
      t.fail('expected a refusal')
    } catch (err) {
      t.ok(isSvidecarError(err), 'a typed error')
      t.equal((err as { code: string }).code, code)
      t.match((err as Error).message, pattern)
    }
  }
  refused(
    pod({
      spec: {
        containers: [
          { name: 'app', image: 'a' },
          { name: 'svidecar', image: 'other' },
        ],
      },
    }),
    'SVD_INJECT_CONFLICT',
    /spec\.containers already has a container named "svidecar"/,
  )
  refused(
    pod({
      spec: {
        containers: [{ name: 'app', image: 'a' }],
        initContainers: [{ name: 'svidecar', image: 'x', restartPolicy: 'Always' }],
      },
    }),
    'SVD_INJECT_CONFLICT',
    /spec\.initContainers already has a container named "svidecar"/,
  )
  refused(
    pod({
      spec: {
        containers: [{ name: 'app', image: 'a' }],
        volumes: [{ name: 'svidecar-config', emptyDir: {} }],
      },
    }),
    'SVD_INJECT_CONFLICT',
    /volume named "svidecar-config"/,
  )
  refused(
    pod({ spec: { containers: [{ name: 'app', image: 'a', ports: [{ containerPort: 15001 }] }] } }),
    'SVD_INJECT_CONFLICT',
    /svidecar\.io\/outbound-port/,
  )
  refused(
    pod({ metadata: { annotations: { 'svidecar.io/mode': 'sidecar', 'svidecar.io/admin-port': '80' } } }),
    'SVD_INJECT_INVALID',
    /svidecar\.io\/mode.*svidecar\.io\/admin-port/,
  )
  refused(
    pod({ metadata: { annotations: { 'svidecar.io/outbound-env': 'OPENAI BASE' } } }),
    'SVD_INJECT_INVALID',
    /svidecar\.io\/outbound-env/,
  )
  refused(
    pod({ metadata: { annotations: { 'svidecar.io/config': 'Bad_Name' } } }),
    'SVD_INJECT_INVALID',
    /svidecar\.io\/config/,
  )
  refused({ apiVersion: 'v1', kind: 'Pod', metadata: {} }, 'SVD_INJECT_INVALID', /no pod spec/)
  refused(
    pod({ spec: { containers: [{ name: 'app', image: 'a' }], volumes: 'none' } }),
    'SVD_INJECT_INVALID',
    /\/spec\/volumes is not an array/,
  )
  refused(
    pod({
      metadata: { annotations: { 'svidecar.io/outbound-env': 'openai' } },
      spec: { containers: [{ name: 'app', image: 'a', env: { A: '1' } }] },
    }),
    'SVD_INJECT_INVALID',
    /\/spec\/containers\/0\/env is not an array/,
  )
  t.throws(() => inject('not an object', DEFAULT_OPTIONS, OPTED_IN), { code: 'SVD_INJECT_INVALID' })
  t.throws(() => inject(null, DEFAULT_OPTIONS, OPTED_IN), { code: 'SVD_INJECT_INVALID' })
})

t.test('env goes to the container at its own index, even past a malformed entry', async (t) => {
  const object = pod({
    metadata: { annotations: { 'svidecar.io/outbound-env': 'openai' } },
    spec: { containers: ['not a container', { name: 'app', image: 'a' }] },
  })
  const r = inject(object, DEFAULT_OPTIONS, OPTED_IN)
  t.ok(r.patch.some((op) => op.path === '/spec/containers/1/env'))
  t.equal((r.object.spec as Obj).containers[0], 'not a container')
})

t.test('kinds it does not handle come back untouched', async (t) => {
  for (const object of [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: {} },
    {
      apiVersion: 'extensions/v1beta1',
      kind: 'Deployment',
      spec: { template: { spec: { containers: [] } } },
    },
    { kind: 'Pod', spec: { containers: [] } },
  ]) {
    const r = inject(object, DEFAULT_OPTIONS, OPTED_IN)
    t.same([r.injected, r.patch], [false, []])
    t.match(r.reason, /not a kind svidecar injects into/)
  }
})

t.test('annotation keys with / and ~ are escaped in the patch', async (t) => {
  const object = pod({ metadata: { annotations: { 'a~b/c': 'x' } } })
  const r = inject(object, DEFAULT_OPTIONS, OPTED_IN)
  t.ok(r.patch.some((op) => op.path === '/metadata/annotations/svidecar.io~1status'))
  injectAndApply(t, object)
})

t.test(
  "prometheus.io annotations: off by default (kubernetes.md §4), on when asked, never over the app's",
  async (t) => {
    const plain = inject(pod(), DEFAULT_OPTIONS, OPTED_IN)
    t.equal((plain.object.metadata as Obj).annotations['prometheus.io/scrape'], undefined, 'off by default')
    const asked = inject(
      pod({ metadata: { annotations: { 'svidecar.io/prometheus-annotations': 'true' } } }),
      DEFAULT_OPTIONS,
      OPTED_IN,
    )
    t.same(
      Object.fromEntries(
        Object.entries((asked.object.metadata as Obj).annotations).filter(([k]) =>
          k.startsWith('prometheus.io/'),
        ),
      ),
      { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15000', 'prometheus.io/path': '/metrics' },
      'the pod annotation turns them on',
    )
    const clusterWide = inject(pod(), { ...DEFAULT_OPTIONS, prometheusAnnotations: true }, OPTED_IN)
    t.equal(
      (clusterWide.object.metadata as Obj).annotations['prometheus.io/port'],
      '15000',
      'so does the flag',
    )
    const podOff = inject(
      pod({ metadata: { annotations: { 'svidecar.io/prometheus-annotations': 'false' } } }),
      { ...DEFAULT_OPTIONS, prometheusAnnotations: true },
      OPTED_IN,
    )
    t.equal(
      (podOff.object.metadata as Obj).annotations['prometheus.io/scrape'],
      undefined,
      'a pod turns them off',
    )

    const own = inject(
      pod({
        metadata: {
          annotations: {
            'svidecar.io/prometheus-annotations': 'true',
            'prometheus.io/scrape': 'true',
            'prometheus.io/port': '8080',
          },
        },
      }),
      DEFAULT_OPTIONS,
      OPTED_IN,
    )
    t.equal((own.object.metadata as Obj).annotations['prometheus.io/port'], '8080', "the app's own stay")
    t.match(own.warnings, [/PodMonitor/])
    const quiet = inject(
      pod({ metadata: { annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8080' } } }),
      DEFAULT_OPTIONS,
      OPTED_IN,
    )
    t.same(quiet.warnings, [], 'no warning about annotations nobody asked for')
  },
)
