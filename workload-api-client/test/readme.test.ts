import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { DevWorkloadApi } from '@svidecar/certs'
import t from 'tap'

const run = promisify(execFile)
const pkg = fileURLToPath(new URL('..', import.meta.url))
const example = readFileSync(`${pkg}/examples/quickstart.ts`, 'utf8')

t.test('the README quick start is examples/quickstart.ts, verbatim', async (t) => {
  const readme = readFileSync(`${pkg}/README.md`, 'utf8')
  const block = /## Quick start[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1]
  t.equal(block, example)
})

t.test('the README mTLS example is examples/mtls.ts, verbatim (tls.test.ts runs it)', async (t) => {
  const readme = readFileSync(`${pkg}/README.md`, 'utf8')
  const block = /## SPIFFE mTLS for servers and clients[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1]
  t.equal(block, readFileSync(`${pkg}/examples/mtls.ts`, 'utf8'))
})

t.test('the quick start runs against a Workload API and prints the SVID', async (t) => {
  const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: 'spiffe://example.org/quickstart' }] })
  t.teardown(() => api.close())
  const { stdout, stderr } = await run(
    process.execPath,
    ['--conditions=svidecar-source', `${pkg}/examples/quickstart.ts`],
    {
      env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: api.endpoint },
      timeout: 30_000,
    },
  )
  t.match(stdout, /^I am spiffe:\/\/example\.org\/quickstart, certificate valid until \d{4}-/m)
  t.match(stdout, /^peer spiffe:\/\/example\.org\/quickstart is a member of example\.org$/m)
  // close() is the caller's own act: no "SVID now undefined" from the onUpdate listener, no warnings.
  t.equal(stdout.trim().split('\n').length, 2, 'exactly the two lines above')
  t.equal(stderr, '')
})
