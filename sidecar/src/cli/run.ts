/**
 * `svidecar run --config FILE`: the sidecar in production. Listeners come up
 * at once and fail closed until the first SVID arrives; with no SVID within
 * `workloadApi.startupTimeout` it exits 1 and says why. SIGTERM or SIGINT
 * turns readiness off, drains in-flight requests within `drainTimeout`, and
 * exits 0. A second signal stops at once.
 */
import { parseArgs } from 'node:util'
import { formatHostPort } from '../config/address.ts'
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
  let sidecar: Sidecar
  try {
    sidecar = await Sidecar.start(config)
  } catch (err) {
    // A policy file that does not load, for one: say why and stop, rather than deny everything silently.
    printConfigError(err)
    return EXIT_FAILURE
  }
  const { admin, inbound, outbound } = sidecar.addresses
  sidecar.logger.info('svidecar started', {
    config: values.config,
    admin: formatHostPort(admin),
    inbound: Object.fromEntries(Object.entries(inbound).map(([n, a]) => [n, formatHostPort(a)])),
    outbound: Object.fromEntries(Object.entries(outbound).map(([n, a]) => [n, formatHostPort(a)])),
  })
  const code = await new Promise<number>((resolve) => {
    let signals = 0
    const onSignal = (signal: NodeJS.Signals) => {
      signals++
      if (signals > 1) {
        sidecar.logger.warn('second signal: stopping now', { signal })
        sidecar.destroy().finally(() => resolve(1))
        return
      }
      sidecar.logger.info('draining', { signal, deadlineMs: config.drainTimeout })
      // close() cuts every connection at the deadline; should anything still hang, stop anyway.
      const backstop = setTimeout(() => {
        sidecar.logger.error('drain did not finish by its deadline: stopping now', {
          deadlineMs: config.drainTimeout,
        })
        sidecar.destroy().finally(() => resolve(1))
      }, config.drainTimeout + DRAIN_BACKSTOP_MS)
      sidecar
        .close()
        .then(
          () => resolve(0),
          () => resolve(1),
        )
        .finally(() => clearTimeout(backstop))
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    const startupMs = config.workloadApi.startupTimeout
    if (startupMs > 0) {
      sidecar.identity.waitReady(startupMs).catch(() => {
        if (signals > 0 || sidecar.identity.ready) return
        sidecar.logger.error(
          `no X.509-SVID from the Workload API within workloadApi.startupTimeout (${startupMs} ms): exiting`,
          {
            code: 'SVD_IDENTITY_UNAVAILABLE',
            socket: config.workloadApi.socket ?? process.env.SPIFFE_ENDPOINT_SOCKET ?? '(none)',
            reason: sidecar.identity.notReadyReason(),
          },
        )
        signals++
        sidecar.destroy().finally(() => resolve(1))
      })
    }
  })
  // Whatever handle a bug might leave open, the process ends shortly after the sidecar did.
  setTimeout(() => process.exit(code), EXIT_BACKSTOP_MS).unref()
  return code
}

const DRAIN_BACKSTOP_MS = 2000
const EXIT_BACKSTOP_MS = 1000
