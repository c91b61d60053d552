import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const bin = fileURLToPath(new URL('../bin/svidecar.js', import.meta.url))
const svidecar = (...args: string[]) =>
  run(process.execPath, ['--conditions=svidecar-source', bin, ...args], { timeout: 60_000 })

t.test('svidecar demo serves a real SVID over the Workload API and shows a rotation', async (t) => {
  const { stdout } = await svidecar('demo', '--ttl', '2', '--rotations', '1')
  t.match(stdout, /export SPIFFE_ENDPOINT_SOCKET=unix:\/\/\/\S+agent\.sock/)
  t.match(stdout, /received X\.509-SVID spiffe:\/\/example\.org\/demo\/agent serial [0-9A-F]+ valid until/)
  t.match(stdout, /rotation 1: new X\.509-SVID spiffe:\/\/example\.org\/demo\/agent serial [0-9A-F]+/)
  const serials = [...stdout.matchAll(/serial ([0-9A-F]+)/g)].map((m) => m[1])
  t.equal(new Set(serials).size, 2, 'the rotation brought a new certificate')
  t.match(stdout, /stopped\n$/)
})

t.test('svidecar --help and demo --help describe the commands; unknown commands fail', async (t) => {
  t.match((await svidecar('--help')).stdout, /Usage: svidecar <command>[\s\S]*demo/)
  t.match((await svidecar('demo', '--help')).stdout, /--ttl <seconds>/)
  await t.rejects(svidecar('nonsense'), { code: 2 })
  await t.rejects(svidecar('demo', '--ttl', 'x'), { code: 1 })
})
