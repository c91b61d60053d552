import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { DevWorkloadApi } from '@svidecar/certs'
import t from 'tap'

const run = promisify(execFile)
const pkg = fileURLToPath(new URL('..', import.meta.url))
const example = readFileSync(`${pkg}/examples/federation.ts`, 'utf8')

t.test('the README federation example is examples/federation.ts, verbatim', async (t) => {
  const readme = readFileSync(`${pkg}/README.md`, 'utf8')
  const block = /## Federation[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1]
  t.equal(block, example)
})

t.test('the federation example serves a bundle over https_spiffe and fetches it back', async (t) => {
  const api = await DevWorkloadApi.start({
    trustDomain: 'our.example',
    workloads: [{ spiffeId: 'spiffe://our.example/bundle-endpoint' }],
  })
  t.teardown(() => api.close())
  const { stdout, stderr } = await run(
    process.execPath,
    ['--conditions=svidecar-source', `${pkg}/examples/federation.ts`],
    { env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: api.endpoint }, timeout: 30_000 },
  )
  t.match(stdout, /^serving the bundle of our\.example at https:\/\/127\.0\.0\.1:\d+\/bundle$/m)
  t.match(stdout, /^fetched 1 root\(s\) of our\.example, next refresh in 300 s$/m)
  t.equal(stderr, '')
})
