// deploy/kubernetes/ and what the injector writes, decoded strictly into the Kubernetes API types (kube-strict,
// a Go program on k8s.io/api, built into the cache): an unknown or duplicate field fails, as it would under
// the API server's strict field validation. kubernetes.test.ts validates against the OpenAPI schemas, which
// accept unknown fields, so a misspelt field (`imagePullPolicyy`, `readinessProbes`) passed there and would be
// dropped, or warned about, in a cluster.
import { execFile, spawn } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { REPO_ROOT } from '../harness/image.ts'
import { ensureKubeStrict } from '../harness/kube-strict-install.ts'
import { ensureKustomize } from '../harness/kustomize-install.ts'

const run = promisify(execFile)
const KUBERNETES = join(REPO_ROOT, 'deploy/kubernetes')
const SVIDECAR = join(REPO_ROOT, 'sidecar/bin/svidecar.js')

// Custom resources: no Go types in k8s.io/api; kubernetes.test.ts validates them with their own models.
const CUSTOM = new Set([
  'cert-manager.io/v1 Certificate',
  'cert-manager.io/v1 Issuer',
  'spire.spiffe.io/v1alpha1 ClusterSPIFFEID',
  'monitoring.coreos.com/v1 PodMonitor',
])

interface Decoded {
  index: number
  kind: string
  name: string
  error?: string
  skipped?: boolean
}

/** Runs a program with `input` on stdin; its stdout. */
function pipe(command: string, args: string[], input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (c: Buffer) => (out += c))
    child.stderr.on('data', (c: Buffer) => (err += c))
    child.on('error', reject)
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${command} exited ${code}: ${err}`)),
    )
    child.stdin.end(input)
  })
}

async function strict(yaml: string): Promise<Decoded[]> {
  const out = await pipe(await ensureKubeStrict(), [], yaml)
  return out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Decoded)
}

async function rendered(dir: string): Promise<string> {
  const { stdout } = await run(await ensureKustomize(), ['build', join(KUBERNETES, dir)], {
    maxBuffer: 16 * 1024 * 1024,
  })
  return stdout
}

function checkAll(t: Test, decoded: Decoded[], what: string): void {
  t.ok(decoded.length > 0, `${what}: objects decoded`)
  for (const d of decoded) {
    const label = `${what}: ${d.kind} ${d.name}`
    if (d.skipped) t.ok(CUSTOM.has(d.kind), `${label}: a custom resource, checked elsewhere`)
    else t.equal(d.error, undefined, `${label}: no unknown or duplicate field`)
  }
}

t.test('the checker refuses what the OpenAPI schemas let through', async (t) => {
  const [typo, duplicate, fine] = await Promise.all([
    strict(
      'apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: a, image: a, imagePullPolicyy: Always}]\n',
    ),
    strict('apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\nspec: {}\n'),
    strict('apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: a, image: a}]\n'),
  ])
  t.match(typo[0]?.error, /imagePullPolicyy/, 'an unknown field')
  t.match(duplicate[0]?.error, /spec/, 'a duplicate field')
  t.equal(fine[0]?.error, undefined, 'a correct object')
})

for (const dir of ['injector', 'examples', 'monitoring']) {
  t.test(`deploy/kubernetes/${dir}: every object decodes strictly`, async (t) => {
    checkAll(t, await strict(await rendered(dir)), dir)
  })
}

t.test('what the injector writes decodes strictly, in each mode', async (t) => {
  const examples = await rendered('examples')
  for (const flags of [[], ['--mode=container'], ['--workload-api=hostPath']]) {
    const injected = await pipe(
      process.execPath,
      ['--conditions=svidecar-source', SVIDECAR, 'inject', '-f', '-', ...flags],
      examples,
    )
    t.match(injected, /name: svidecar\n/, `${flags.join(' ') || 'native'}: injected`)
    checkAll(t, await strict(injected), `inject ${flags.join(' ') || '(native)'}`)
  }
})
