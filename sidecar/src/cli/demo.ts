/**
 * `svidecar demo`: the embedded default. Starts the dev Workload API on a
 * temporary unix socket, connects to it with the library's X509Source over
 * the real gRPC protocol, and prints the SVID it receives and every
 * rotation, until Ctrl-C (or --rotations N).
 */
import { parseArgs } from 'node:util'
import { DevWorkloadApi } from '@svidecar/certs'
import { X509Source } from 'workload-api-client'

const HELP = `Usage: svidecar demo [options]

Starts a dev SPIFFE Workload API (no SPIRE needed) and a client that prints
the X.509-SVID it receives and each rotation. Stop with Ctrl-C.

Options:
  --ttl <seconds>       X.509-SVID lifetime; rotation comes at half of it (default 20)
  --rotations <n>       exit after n rotations (default: run until stopped)
  --trust-domain <td>   trust domain (default example.org)
  -h, --help            show this help
`

export async function runDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ttl: { type: 'string', default: '20' },
      rotations: { type: 'string' },
      'trust-domain': { type: 'string', default: 'example.org' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  const ttlSeconds = Number(values.ttl)
  if (!Number.isFinite(ttlSeconds) || ttlSeconds < 2)
    throw new Error(`--ttl must be a number of seconds >= 2, got "${values.ttl}"`)
  const maxRotations = values.rotations === undefined ? Number.POSITIVE_INFINITY : Number(values.rotations)
  const td = values['trust-domain']

  const api = await DevWorkloadApi.start({
    trustDomain: td,
    x509SvidTtlMs: ttlSeconds * 1000,
    workloads: [{ spiffeId: `spiffe://${td}/demo/agent`, hint: 'agent' }],
  })
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()}  ${line}\n`)
  log(`dev Workload API listening; point SPIFFE clients at it with:`)
  process.stdout.write(`\n  export SPIFFE_ENDPOINT_SOCKET=${api.endpoint}\n\n`)

  const source = await X509Source.create({ address: api.endpoint, hint: 'agent', timeoutMs: 10_000 })
  let rotations = -1
  let lastSerial = ''
  let finish: (code: number) => void = () => {}
  const finished = new Promise<number>((resolve) => {
    finish = resolve
  })
  const report = () => {
    const svid = source.svid
    if (svid === undefined) {
      log(`no usable SVID (${source.lastError?.message ?? 'waiting'})`)
      return
    }
    if (svid.serialNumber === lastSerial) return
    lastSerial = svid.serialNumber
    rotations++
    const what = rotations === 0 ? 'received X.509-SVID' : `rotation ${rotations}: new X.509-SVID`
    log(`${what} ${svid.id} serial ${svid.serialNumber} valid until ${svid.notAfter.toISOString()}`)
    const bundle = source.getX509BundleForTrustDomain(svid.id.trustDomain)
    if (rotations === 0) log(`bundle of ${svid.id.trustDomain}: ${bundle?.authorities.length ?? 0} root(s)`)
    if (rotations >= maxRotations) finish(0)
  }
  source.onUpdate(report)
  report()
  const onSignal = () => finish(0)
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const code = await finished
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  source.close()
  await api.close()
  log('stopped')
  return code
}
