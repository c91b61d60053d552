/**
 * `svidecar run --config FILE`: the sidecar in production. Listeners come up
 * at once and fail closed until the first SVID arrives; SIGTERM or SIGINT
 * turns readiness off, drains in-flight requests within `drainTimeout`, and
 * exits 0. A second signal stops at once.
 */
import { parseArgs } from 'node:util'
import { loadConfig } from '../config/index.ts'
import { Sidecar } from '../sidecar.ts'
import { printConfigError } from './config-check.ts'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './usage.ts'

const HELP = `Usage: svidecar run --config FILE

Runs the sidecar with the given YAML configuration.

Options:
  -c, --config FILE   the configuration file (required)
  -h, --help          show this help

Environment:
  SVIDECAR_WORKLOAD_API_SOCKET   Workload API address (over workloadApi.socket)
  SPIFFE_ENDPOINT_SOCKET         Workload API address when neither is set
  SVIDECAR_ADMIN_ADDRESS         admin listener address
  SVIDECAR_LISTENER_<NAME>_ADDRESS   address of the listener named <name>
`

export async function runRun(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(HELP)
    return EXIT_OK
  }
  if (values.config === undefined) {
    process.stderr.write(`svidecar run: --config FILE is required\n\n${HELP}`)
    return EXIT_USAGE
  }
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig(values.config, process.env)
  } catch (err) {
    printConfigError(err)
    return EXIT_FAILURE
  }
  const sidecar = await Sidecar.start(config)
  const { admin, inbound, outbound } = sidecar.addresses
  sidecar.logger.info('svidecar started', {
    config: values.config,
    admin: `${admin.host}:${admin.port}`,
    inbound: Object.fromEntries(Object.entries(inbound).map(([n, a]) => [n, `${a.host}:${a.port}`])),
    outbound: Object.fromEntries(Object.entries(outbound).map(([n, a]) => [n, `${a.host}:${a.port}`])),
  })
  return new Promise<number>((resolve) => {
    let signals = 0
    const onSignal = (signal: NodeJS.Signals) => {
      signals++
      if (signals > 1) {
        sidecar.logger.warn('second signal: stopping now', { signal })
        sidecar.destroy().finally(() => resolve(1))
        return
      }
      sidecar.logger.info('draining', { signal, deadlineMs: config.drainTimeout })
      sidecar.close().then(
        () => resolve(0),
        () => resolve(1),
      )
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  })
}
