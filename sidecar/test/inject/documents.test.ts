// `svidecar inject -f` on YAML that uses anchors, aliases and merge keys (`<<`), as hand-written manifests do:
// kubectl reads them with go-yaml, which resolves merge keys (YAML 1.1's merge type), so the injector must see
// the same object kubectl will create, and its output must read back (with merge keys, like kubectl) as exactly
// the object the injector computed.
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { injectYaml } from '../../src/inject/documents.ts'
import { inject } from '../../src/inject/inject.ts'
import { DEFAULT_OPTIONS } from '../../src/inject/options.ts'

const asKubectlReads = (text: string) =>
  parseAllDocuments(text, { merge: true }).map((d) =>
    JSON.parse(JSON.stringify(d.toJS({ maxAliasCount: 100 }))),
  )

t.test('an alias shared by two containers: each gets its own base URL once', async (t) => {
  const text = `apiVersion: v1
kind: Pod
metadata:
  name: a
  annotations:
    svidecar.io/outbound-env: openai
spec:
  containers:
    - name: app
      image: a
      env: &env
        - name: X
          value: "1"
    - name: b
      image: b
      env: *env
`
  const [object] = asKubectlReads(text)
  const expected = inject(object, DEFAULT_OPTIONS, { namespaceOptedIn: true }).object
  const out = injectYaml(text, DEFAULT_OPTIONS)
  t.same(asKubectlReads(out.text), [expected], 'the output reads back as the injected object')
  const [read] = asKubectlReads(out.text) as [{ spec: { containers: { env: unknown[] }[] } }]
  for (const c of read.spec.containers) t.equal(c.env.length, 2, 'X and OPENAI_BASE_URL, once each')
})

t.test('merge keys are resolved as kubectl resolves them', async (t) => {
  const text = `apiVersion: v1
kind: Pod
metadata:
  name: a
  annotations:
    svidecar.io/outbound-env: openai
spec:
  containers:
    - &app
      name: app
      image: a
      env:
        - name: X
          value: "1"
    - <<: *app
      name: b
`
  const [object] = asKubectlReads(text)
  const expected = inject(object, DEFAULT_OPTIONS, { namespaceOptedIn: true }).object
  const out = injectYaml(text, DEFAULT_OPTIONS)
  t.same(asKubectlReads(out.text), [expected], 'the output reads back as the injected object')
})

t.test('documents without aliases keep their comments', async (t) => {
  const text = `# top
apiVersion: v1
kind: Pod
metadata:
  name: a # the name
spec:
  containers: [{name: app, image: a}]
`
  const out = injectYaml(text, DEFAULT_OPTIONS)
  t.match(out.text, /# top/)
  t.match(out.text, /# the name/)
})

// `kubectl get deploy agent -o json | svidecar inject -f - | jq …`: JSON in, JSON out (istioctl kube-inject
// answers JSON with YAML, which jq cannot read either way; a half-flow YAML is worse).
t.test('a JSON document comes back as JSON', async (t) => {
  const object = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'a', annotations: { 'x/y~z': '1' } },
    spec: { containers: [{ name: 'app', image: 'a' }] },
  }
  const expected = inject(object, DEFAULT_OPTIONS, { namespaceOptedIn: true }).object
  for (const text of [JSON.stringify(object), `${JSON.stringify(object, null, 2)}\n`]) {
    const out = injectYaml(text, DEFAULT_OPTIONS)
    t.same(JSON.parse(out.text), expected, 'JSON.parse reads the output')
  }
})
