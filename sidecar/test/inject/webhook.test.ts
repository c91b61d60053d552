// The admission webhook over real HTTPS on 127.0.0.1 with a certificate from the dev CA: recorded-shape
// AdmissionReview v1 fixtures in, the patch decoded, applied with fast-json-patch, validated, and fed back.
// No API server can run here (see the Kubernetes reference), so the fixtures stand in for its requests.
import { writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { join } from 'node:path'
import { DevCa } from '@svidecar/certs'
import jsonpatch from 'fast-json-patch'
import t, { type Test } from 'tap'
import { DEFAULT_OPTIONS } from '../../src/inject/options.ts'
import { startWebhook } from '../../src/inject/webhook.ts'
import { createLogger } from '../../src/observe/log.ts'
import { podSpecProblems, restrictedProblems, validatePod } from '../helpers/pod-checks.ts'

// biome-ignore lint/suspicious/noExplicitAny: AdmissionReview bodies walked freely in assertions
type Obj = Record<string, any>
const SERVICE_NAME = 'svidecar-injector.svidecar-system.svc'

function issue(ca: DevCa, dnsName: string): { cert: string; key: string } {
  const leaf = ca.issueX509Svid({ dnsNames: [dnsName], extKeyUsage: ['serverAuth'] })
  return { cert: leaf.certChainPem, key: leaf.keyPem }
}

async function setup(t: Test) {
  const ca = DevCa.create({ trustDomain: 'example.org' })
  const dir = t.testdir()
  const certFile = join(dir, 'tls.crt')
  const keyFile = join(dir, 'tls.key')
  const first = issue(ca, SERVICE_NAME)
  writeFileSync(certFile, first.cert)
  writeFileSync(keyFile, first.key)
  const lines: string[] = []
  const webhook = await startWebhook({
    host: '127.0.0.1',
    port: 0,
    certFile,
    keyFile,
    reloadIntervalMs: 50,
    injector: {
      ...DEFAULT_OPTIONS,
      excludedNamespaces: [...DEFAULT_OPTIONS.excludedNamespaces, 'svidecar-system'],
    },
    logger: createLogger({ level: 'debug', stream: { write: (l: string) => lines.push(l) } }),
  })
  t.teardown(() => webhook.close())
  const call = (path: string, body: string | undefined, method = 'POST') =>
    new Promise<{ status: number; body: string; peerCert: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: webhook.address.port,
          path,
          method,
          ca: ca.bundlePem(),
          servername: SERVICE_NAME,
          headers: { 'content-type': 'application/json' },
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = []
          const peerCert =
            (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate()?.serialNumber ?? ''
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), peerCert }),
          )
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  const admit = async (review: unknown) => {
    const res = await call('/inject', typeof review === 'string' ? review : JSON.stringify(review))
    t.equal(res.status, 200, 'every review is answered with 200 and an AdmissionReview')
    return JSON.parse(res.body) as Obj
  }
  return { ca, certFile, keyFile, webhook, call, admit, lines }
}

function reviewOf(object: unknown, request: Obj = {}): Obj {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'b7a6c1e2-0000-4000-8000-000000000001',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: '',
      namespace: 'agents',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
      ...request,
    },
  }
}

// A pod as the ReplicaSet controller creates it: generateName, no name, no namespace in the object.
const controllerPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    generateName: 'agent-5d8f7c9b6-',
    labels: { app: 'agent', 'pod-template-hash': '5d8f7c9b6' },
    annotations: { 'svidecar.io/outbound-env': 'openai' },
    ownerReferences: [
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'agent-5d8f7c9b6', uid: 'u1', controller: true },
    ],
  },
  spec: {
    containers: [{ name: 'agent', image: 'agent:1', ports: [{ name: 'http', containerPort: 8080 }] }],
    serviceAccountName: 'agent',
  },
}

function applyResponse(t: Test, object: Obj, response: Obj): Obj {
  t.equal(response.patchType, 'JSONPatch')
  const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as jsonpatch.Operation[]
  t.equal(
    jsonpatch.validate(patch, structuredClone(object)),
    undefined,
    'a valid RFC 6902 patch for the object',
  )
  return jsonpatch.applyPatch(structuredClone(object), patch, true, false).newDocument
}

t.test('a controller-made pod is injected; its own output is an empty patch', async (t) => {
  const { admit } = await setup(t)
  const answer = await admit(reviewOf(controllerPod))
  t.equal(answer.apiVersion, 'admission.k8s.io/v1')
  t.equal(answer.kind, 'AdmissionReview')
  t.equal(answer.response.uid, 'b7a6c1e2-0000-4000-8000-000000000001', 'the uid is echoed')
  t.equal(answer.response.allowed, true)
  const pod = applyResponse(t, controllerPod, answer.response)
  t.doesNotThrow(() => validatePod(pod))
  t.same(podSpecProblems(pod.spec), [])
  t.same(restrictedProblems(pod.spec.initContainers[0]), [])
  t.same(pod.spec.containers[0].env, [{ name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:15001/v1' }])

  const again = await admit(reviewOf(pod))
  t.same(
    again.response,
    { uid: 'b7a6c1e2-0000-4000-8000-000000000001', allowed: true },
    'reinvocation: no patch',
  )
})

t.test('dryRun computes the same patch', async (t) => {
  const { admit } = await setup(t)
  const wet = await admit(reviewOf(controllerPod))
  const dry = await admit(reviewOf(controllerPod, { dryRun: true }))
  t.equal(dry.response.patch, wet.response.patch)
})

t.test('fixtures: existing init containers, opt-out, hostNetwork, excluded namespace', async (t) => {
  const { admit } = await setup(t)
  const withInit = {
    ...controllerPod,
    spec: { ...controllerPod.spec, initContainers: [{ name: 'init', image: 'i' }] },
  }
  const injected = applyResponse(t, withInit, (await admit(reviewOf(withInit))).response)
  t.same(
    injected.spec.initContainers.map((c: Obj) => c.name),
    ['svidecar', 'init'],
  )
  t.same(podSpecProblems(injected.spec), [])

  const optOut = {
    ...controllerPod,
    metadata: { ...controllerPod.metadata, labels: { 'svidecar.io/inject': 'disabled' } },
  }
  t.same((await admit(reviewOf(optOut))).response, {
    uid: 'b7a6c1e2-0000-4000-8000-000000000001',
    allowed: true,
  })

  const host = { ...controllerPod, spec: { ...controllerPod.spec, hostNetwork: true } }
  const hostAnswer = await admit(reviewOf(host))
  t.equal(hostAnswer.response.allowed, true)
  t.equal(hostAnswer.response.patch, undefined)
  t.match(hostAnswer.response.warnings, [/hostNetwork/])

  const own = await admit(reviewOf(controllerPod, { namespace: 'svidecar-system' }))
  t.equal(own.response.patch, undefined, "never in the injector's own namespace")
  t.equal(own.response.allowed, true)
})

t.test('bad input: allowed, no patch, a warning; never a crash', async (t) => {
  const { admit, call } = await setup(t)
  const cases: [string, unknown, RegExp][] = [
    ['not JSON', '{"apiVersion": "admission.k8s.io/v1", ', /not a JSON AdmissionReview/],
    ['JSON but not an object', '[1,2]', /not a JSON AdmissionReview/],
    ['another kind', { apiVersion: 'admission.k8s.io/v1', kind: 'Pod' }, /not AdmissionReview/],
    [
      'v1beta1',
      { ...reviewOf(controllerPod), apiVersion: 'admission.k8s.io/v1beta1' },
      /v1beta1 is not supported/,
    ],
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /no request/],
    ['no uid', reviewOf(controllerPod, { uid: undefined }), /no uid/],
    [
      'a Deployment',
      reviewOf(
        { apiVersion: 'apps/v1', kind: 'Deployment' },
        { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } },
      ),
      /apps\/v1\/Deployment is not a Pod/,
    ],
    ['UPDATE', reviewOf(controllerPod, { operation: 'UPDATE' }), /UPDATE is not CREATE/],
    ['a subresource', reviewOf(controllerPod, { subResource: 'ephemeralcontainers' }), /subresource/],
    ['no object', reviewOf(undefined), /no object/],
  ]
  for (const [name, body, warning] of cases) {
    const answer = await admit(body)
    t.equal(answer.kind, 'AdmissionReview', name)
    t.equal(answer.response.allowed, true, `${name}: allowed`)
    t.equal(answer.response.patch, undefined, `${name}: no patch`)
    t.match(answer.response.warnings, [warning], `${name}: says why`)
  }
  const huge = await admit(
    JSON.stringify({ ...reviewOf(controllerPod), padding: 'x'.repeat(5 * 1024 * 1024) }),
  )
  t.equal(huge.response.allowed, true, 'a body over the cap: allowed')
  t.match(huge.response.warnings, [/larger than 4194304 bytes/])
  const beta = await admit({ ...reviewOf(controllerPod), apiVersion: 'admission.k8s.io/v1beta1' })
  t.equal(
    beta.apiVersion,
    'admission.k8s.io/v1beta1',
    'the version is echoed so the API server can read the answer',
  )
  t.equal(beta.response.uid, 'b7a6c1e2-0000-4000-8000-000000000001')
  t.equal((await call('/healthz', undefined, 'GET')).status, 200, 'still serving')
  t.equal((await call('/inject', undefined, 'GET')).status, 405)
  t.equal((await call('/other', '{}')).status, 404)
})

t.test('a malformed pod that asked for the sidecar is denied with the reason, not a crash', async (t) => {
  const { admit } = await setup(t)
  const pod = { ...controllerPod, spec: { ...controllerPod.spec, volumes: 'none' } }
  const answer = await admit(reviewOf(pod))
  t.equal(answer.response.allowed, false)
  t.equal(answer.response.status.code, 400)
  t.match(answer.response.status.message, /\/spec\/volumes is not an array/)
})

t.test('a pod with a svidecar container we did not inject is denied with the reason', async (t) => {
  const { admit, lines } = await setup(t)
  const pod = {
    ...controllerPod,
    spec: {
      containers: [
        { name: 'agent', image: 'a' },
        { name: 'svidecar', image: 'evil' },
      ],
    },
  }
  const answer = await admit(reviewOf(pod))
  t.equal(answer.response.allowed, false)
  t.equal(answer.response.patch, undefined)
  t.equal(answer.response.status.code, 409)
  t.match(
    answer.response.status.message,
    /already has a container named "svidecar" that svidecar did not inject/,
  )
  t.ok(
    lines.some((l) => l.includes('SVD_INJECT_CONFLICT')),
    'logged with its code',
  )
})

t.test('the serving certificate is reloaded when its files change', async (t) => {
  const { ca, call, certFile, keyFile, webhook, lines } = await setup(t)
  const before = (await call('/healthz', undefined, 'GET')).peerCert
  // A key that does not match the certificate (a rotation caught half-way) is not served.
  const next = issue(ca, SERVICE_NAME)
  writeFileSync(certFile, next.cert)
  const seen = Date.now() + 10_000
  while (Date.now() < seen && !lines.some((l) => l.includes('new serving certificate does not load'))) {
    await new Promise((r) => setTimeout(r, 20))
  }
  t.ok(
    lines.some((l) => l.includes('new serving certificate does not load')),
    'the mismatched pair is logged',
  )
  t.equal(webhook.reloads, 0, 'and not loaded')
  t.equal((await call('/healthz', undefined, 'GET')).peerCert, before, 'the old certificate is still served')
  const deadline = Date.now() + 10_000
  writeFileSync(keyFile, next.key)
  let served = before
  while (Date.now() < deadline && served === before) {
    served = (await call('/healthz', undefined, 'GET')).peerCert
    if (served === before) await new Promise((r) => setTimeout(r, 20))
  }
  t.not(served, before, 'the new certificate is served without a restart')
  t.equal(served, new (await import('node:crypto')).X509Certificate(next.cert).serialNumber)
  t.equal(webhook.reloads, 1)
})
