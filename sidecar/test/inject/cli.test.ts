// `svidecar inject` and `svidecar inject-webhook` as processes: files in, files out, exit codes, and the
// webhook started from the command line with a certificate openssl made, answering over HTTPS until SIGTERM.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { request } from 'node:https'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parseAllDocuments } from 'yaml'

const run = promisify(execFile)
const BIN = new URL('../../bin/svidecar.js', import.meta.url).pathname
const NODE = [process.execPath, '--conditions=svidecar-source', BIN]

async function svidecar(
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(NODE[0] as string, [...NODE.slice(1), ...args], (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr })
    })
    if (input !== undefined) child.stdin?.end(input)
  })
}

const MANIFESTS = `# The agent, as its team wrote it.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: agent # keep this comment
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata:
      labels: {app: agent}
      annotations:
        svidecar.io/outbound-env: openai
    spec:
      containers:
        - name: agent
          image: agent:1
---
# Left exactly as it is.
apiVersion: v1
kind: Service
metadata: {name: agent}   # odd spacing stays
spec: {ports: [{port: 80}]}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: eval
spec:
  template:
    metadata:
      labels:
        svidecar.io/inject: disabled
    spec:
      restartPolicy: Never
      containers: [{name: eval, image: eval:1}]
`

t.test('inject -f: workloads injected, other documents byte for byte, idempotent', async (t) => {
  const dir = t.testdir({ 'in.yaml': MANIFESTS })
  const out = join(dir, 'out.yaml')
  const first = await svidecar(['inject', '-f', join(dir, 'in.yaml'), '-o', out])
  t.equal(first.code, 0, first.stderr)
  const text = readFileSync(out, 'utf8')
  const docs = parseAllDocuments(text).map((d) => d.toJS())
  t.equal(docs.length, 3)
  t.equal(docs[0].spec.template.spec.initContainers[0].name, 'svidecar')
  t.same(docs[0].spec.template.spec.containers[0].env, [
    { name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:15001/v1' },
  ])
  t.match(text, /name: agent # keep this comment/, 'comments of injected documents stay')
  t.ok(
    text.includes(MANIFESTS.split('---\n')[1] as string),
    'the Service document is unchanged, byte for byte',
  )
  t.ok(text.includes(MANIFESTS.split('---\n')[2] as string), 'the opted-out Job is unchanged')
  t.match(first.stderr, /document 3: Job eval: not injected: opted out/)

  const second = await svidecar(['inject', '-f', out])
  t.equal(second.code, 0)
  t.equal(second.stdout, text, 'injecting the output again changes nothing')

  const stdin = await svidecar(
    ['inject', '-f', '-', '--mode', 'container', '--image', 'registry.example/svidecar@sha256:0123'],
    MANIFESTS,
  )
  t.equal(stdin.code, 0)
  const classic = parseAllDocuments(stdin.stdout)[0]?.toJS()
  t.same(
    classic.spec.template.spec.containers.map((c: { name: string }) => c.name),
    ['agent', 'svidecar'],
  )
  t.equal(classic.spec.template.spec.containers[1].image, 'registry.example/svidecar@sha256:0123')
})

t.test('inject -f: a List of objects', async (t) => {
  const list = {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'a' },
        spec: { containers: [{ name: 'a', image: 'a' }] },
      },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { k: 'v' } },
    ],
  }
  const res = await svidecar(['inject', '-f', '-'], JSON.stringify(list))
  t.equal(res.code, 0, res.stderr)
  const out = parseAllDocuments(res.stdout)[0]?.toJS()
  t.equal(out.items[0].spec.initContainers[0].name, 'svidecar')
  t.same(out.items[1], list.items[1])
})

t.test('inject -f: refusals and bad input exit 1 with the reason; bad flags exit 2', async (t) => {
  const conflict = `apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: a}, {name: svidecar, image: mine}]\n`
  const refused = await svidecar(['inject', '-f', '-'], conflict)
  t.equal(refused.code, 1)
  t.match(
    refused.stderr,
    /SVD_INJECT_CONFLICT: <stdin>: document 2: Pod p: spec\.containers already has a container named "svidecar"/,
  )
  t.equal(refused.stdout, '', 'nothing half-written')

  const broken = await svidecar(['inject', '-f', '-'], 'apiVersion: v1\nkind: Pod\nmetadata: {name: [\n')
  t.equal(broken.code, 1)
  t.match(broken.stderr, /SVD_INJECT_INVALID: <stdin>: document 1: .*line/)

  const annotation = await svidecar(
    ['inject', '-f', '-'],
    'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {svidecar.io/mode: sidecar}\nspec: {containers: [{name: a, image: a}]}\n',
  )
  t.equal(annotation.code, 1)
  t.match(annotation.stderr, /annotation svidecar\.io\/mode: "sidecar" is neither native nor container/)

  t.equal((await svidecar(['inject'])).code, 2, 'no -f')
  t.equal((await svidecar(['inject', '-f', '-', '--mode', 'sidecar'], '')).code, 2)
  t.equal((await svidecar(['inject', '-f', '-', '--admin-port', '80'], '')).code, 2)
  t.equal((await svidecar(['inject', '-f', '/nonexistent/file.yaml'])).code, 1)
  t.match((await svidecar(['inject', '--help'])).stdout, /svidecar\.io\/\* annotations/)
})

t.test(
  'inject -f: prometheus.io annotations only with --prometheus-annotations (kubernetes.md §4)',
  async (t) => {
    const pod = 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: a}]}\n'
    const annotations = async (args: string[]) => {
      const res = await svidecar(['inject', '-f', '-', ...args], pod)
      t.equal(res.code, 0, res.stderr)
      const all: Record<string, string> = parseAllDocuments(res.stdout)[0]?.toJS().metadata.annotations ?? {}
      return Object.keys(all).filter((k) => k.startsWith('prometheus.io/'))
    }
    t.same(await annotations([]), [], 'off by default')
    t.same(await annotations(['--prometheus-annotations']), [
      'prometheus.io/scrape',
      'prometheus.io/port',
      'prometheus.io/path',
    ])
    t.same(await annotations(['--no-prometheus-annotations']), [], 'the old flag is still accepted: off')
    const both = await svidecar(
      ['inject', '-f', '-', '--prometheus-annotations', '--no-prometheus-annotations'],
      pod,
    )
    t.equal(both.code, 2, 'both flags at once is a usage error')
    t.match(both.stderr, /--prometheus-annotations/)
    t.match((await svidecar(['inject', '--help'])).stdout, /--prometheus-annotations/)
  },
)

t.test('inject-webhook: starts from the command line, answers over HTTPS, stops on SIGTERM', async (t) => {
  const dir = t.testdir()
  const cert = join(dir, 'tls.crt')
  const key = join(dir, 'tls.key')
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=svidecar-injector.svidecar-system.svc',
    '-addext',
    'subjectAltName=DNS:svidecar-injector.svidecar-system.svc',
    '-keyout',
    key,
    '-out',
    cert,
  ])
  const port = await freePort()
  const child: ChildProcess = spawn(
    NODE[0] as string,
    [
      ...NODE.slice(1),
      'inject-webhook',
      '--tls-cert',
      cert,
      '--tls-key',
      key,
      '--address',
      `127.0.0.1:${port}`,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let output = ''
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString()
  })
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const ca = readFileSync(cert)
  const call = (path: string, body?: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: body === undefined ? 'GET' : 'POST',
          ca,
          servername: 'svidecar-injector.svidecar-system.svc',
          agent: false,
        },
        (res) => {
          let data = ''
          res.on('data', (c: Buffer) => {
            data += c.toString()
          })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }))
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  const deadline = Date.now() + 30_000
  let healthy = false
  while (!healthy && Date.now() < deadline && child.exitCode === null) {
    healthy = await call('/healthz').then(
      (r) => r.status === 200,
      () => false,
    )
    if (!healthy) await new Promise((r) => setTimeout(r, 100))
  }
  t.ok(healthy, `serving /healthz (${output})`)
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u-1',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: 'agents',
      operation: 'CREATE',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'a-' },
        spec: { containers: [{ name: 'a', image: 'a' }] },
      },
    },
  }
  const answer = JSON.parse((await call('/inject', JSON.stringify(review))).body)
  t.equal(answer.response.uid, 'u-1')
  t.equal(answer.response.patchType, 'JSONPatch')
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'exits 0 on SIGTERM')
  t.match(output, /"msg":"admission review"/, 'each review is logged')
})

t.test('inject-webhook: usage errors and a missing certificate', async (t) => {
  t.equal((await svidecar(['inject-webhook'])).code, 2, 'no certificate flags')
  const missing = await svidecar([
    'inject-webhook',
    '--tls-cert',
    '/nonexistent.crt',
    '--tls-key',
    '/nonexistent.key',
    '--address',
    '127.0.0.1:0',
  ])
  t.equal(missing.code, 1)
  t.match(missing.stdout + missing.stderr, /SVD_CONFIG_UNREADABLE/)
})

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net')
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as { port: number }).port
  await new Promise((r) => srv.close(r))
  return port
}
