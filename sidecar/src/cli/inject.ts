/**
 * `svidecar inject -f FILE` (offline, like `istioctl kube-inject`) and
 * `svidecar inject-webhook` (the admission webhook). Both take the same flags
 * for what to inject and share the pure injector in src/inject/.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { formatHostPort, parseHostPort } from '../config/address.ts'
import { isSvidecarError } from '../errors/index.ts'
import { injectYaml } from '../inject/documents.ts'
import { DEFAULT_OPTIONS, type InjectorOptions } from '../inject/options.ts'
import { startWebhook } from '../inject/webhook.ts'
import { createLogger, type Level } from '../observe/log.ts'
import { EXIT_FAILURE, EXIT_OK, UsageError } from './usage.ts'

const INJECTOR_FLAGS = `What to inject (the same for both commands; pods override with svidecar.io/* annotations):
  --image IMAGE               the svidecar image, best by digest (default ${DEFAULT_OPTIONS.image})
  --image-pull-policy P       Always, IfNotPresent or Never (default ${DEFAULT_OPTIONS.imagePullPolicy})
  --mode M                    native (an init container with restartPolicy Always, Kubernetes >= 1.29)
                              or container (a regular container, older clusters) (default ${DEFAULT_OPTIONS.mode})
  --workload-api S            csi (the SPIFFE CSI driver, csi.spiffe.io) or hostPath (dev clusters) (default ${DEFAULT_OPTIONS.workloadApi})
  --host-path-dir DIR         the agent's socket directory on the node, for hostPath (default ${DEFAULT_OPTIONS.hostPathDir})
  --socket-name FILE          the agent's socket file in that directory (default ${DEFAULT_OPTIONS.socketName})
  --config-map NAME           the ConfigMap with svidecar.yaml when a pod names none (default ${DEFAULT_OPTIONS.configMap})
  --admin-port N              the admin port (default ${DEFAULT_OPTIONS.adminPort})
  --outbound-port N           the outbound listener app base URLs point at (default ${DEFAULT_OPTIONS.outboundPort})
  --prometheus-annotations    add prometheus.io/scrape|port|path for the admin port (default off;
                              --no-prometheus-annotations, the old opt-out, is still accepted)
  --exclude-namespace NS      never inject into NS (repeatable; ${DEFAULT_OPTIONS.excludedNamespaces.join(', ')} always)
`

const INJECT_HELP = `Usage: svidecar inject -f FILE [-o OUT] [options]

Adds the svidecar sidecar to the Pods, Deployments, StatefulSets, DaemonSets,
ReplicaSets, Jobs and CronJobs in a YAML file (any number of documents, or a
List), offline, as the admission webhook would. Other documents, and objects
that opted out (svidecar.io/inject: disabled) or are already injected, are
written back unchanged.

  -f, --filename FILE   the manifests (- for standard input) (required)
  -o, --output FILE     where to write the result (default: standard output)
  -h, --help            show this help

${INJECTOR_FLAGS}`

const WEBHOOK_HELP = `Usage: svidecar inject-webhook --tls-cert FILE --tls-key FILE [options]

Serves the mutating admission webhook: AdmissionReview v1 over HTTPS on
/inject, /healthz for probes. The certificate and key files are re-read every
--reload-interval and served from then on when they changed and load.

  --tls-cert FILE         the serving certificate (PEM, chain allowed) (required)
  --tls-key FILE          its private key (PEM) (required)
  --address HOST:PORT     where to listen, an IPv6 host in brackets (default [::]:8443:
                          every IPv6 and IPv4 address)
  --reload-interval SECS  how often to look for a new certificate (default 10)
  --log-level LEVEL       debug, info, warn or error (default info)
  -h, --help              show this help

${INJECTOR_FLAGS}`

const INJECTOR_OPTIONS = {
  image: { type: 'string' },
  'image-pull-policy': { type: 'string' },
  mode: { type: 'string' },
  'workload-api': { type: 'string' },
  'host-path-dir': { type: 'string' },
  'socket-name': { type: 'string' },
  'config-map': { type: 'string' },
  'admin-port': { type: 'string' },
  'outbound-port': { type: 'string' },
  'prometheus-annotations': { type: 'boolean' },
  // Accepted so deployments written when the annotations were on by default keep starting; off is now the default.
  'no-prometheus-annotations': { type: 'boolean' },
  'exclude-namespace': { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const

type InjectorValues = {
  [K in keyof typeof INJECTOR_OPTIONS]?: (typeof INJECTOR_OPTIONS)[K] extends { multiple: true }
    ? string[]
    : (typeof INJECTOR_OPTIONS)[K] extends { type: 'boolean' }
      ? boolean
      : string
}

function oneOf<T extends string>(
  command: string,
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(command, `--${flag}: "${value}" is not one of ${allowed.join(', ')}`)
  }
  return value as T
}

function port(command: string, flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN
  if (!(n >= 1024 && n <= 65535))
    throw new UsageError(command, `--${flag}: "${value}" is not a port from 1024 to 65535`)
  return n
}

function nonEmpty(command: string, flag: string, value: string | undefined, fallback: string): string {
  if (value === undefined) return fallback
  if (value.trim() === '') throw new UsageError(command, `--${flag} needs a value`)
  return value
}

export function injectorOptions(command: string, v: InjectorValues): InjectorOptions {
  const o: InjectorOptions = {
    ...DEFAULT_OPTIONS,
    image: nonEmpty(command, 'image', v.image, DEFAULT_OPTIONS.image),
    imagePullPolicy: oneOf(
      command,
      'image-pull-policy',
      v['image-pull-policy'],
      ['Always', 'IfNotPresent', 'Never'],
      DEFAULT_OPTIONS.imagePullPolicy,
    ),
    mode: oneOf(command, 'mode', v.mode, ['native', 'container'], DEFAULT_OPTIONS.mode),
    workloadApi: oneOf(
      command,
      'workload-api',
      v['workload-api'],
      ['csi', 'hostPath'],
      DEFAULT_OPTIONS.workloadApi,
    ),
    hostPathDir: nonEmpty(command, 'host-path-dir', v['host-path-dir'], DEFAULT_OPTIONS.hostPathDir),
    socketName: nonEmpty(command, 'socket-name', v['socket-name'], DEFAULT_OPTIONS.socketName),
    configMap: nonEmpty(command, 'config-map', v['config-map'], DEFAULT_OPTIONS.configMap),
    adminPort: port(command, 'admin-port', v['admin-port'], DEFAULT_OPTIONS.adminPort),
    outboundPort: port(command, 'outbound-port', v['outbound-port'], DEFAULT_OPTIONS.outboundPort),
    prometheusAnnotations: v['prometheus-annotations'] === true,
    excludedNamespaces: [
      ...DEFAULT_OPTIONS.excludedNamespaces,
      ...(v['exclude-namespace'] ?? []).filter((n) => n !== ''),
    ],
  }
  if (v['prometheus-annotations'] === true && v['no-prometheus-annotations'] === true)
    throw new UsageError(
      command,
      '--prometheus-annotations and --no-prometheus-annotations contradict each other',
    )
  if (o.socketName.includes('/')) throw new UsageError(command, '--socket-name is a file name, not a path')
  if (o.adminPort === o.outboundPort)
    throw new UsageError(command, '--admin-port and --outbound-port are the same')
  return o
}

export async function runInject(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...INJECTOR_OPTIONS,
      filename: { type: 'string', short: 'f' },
      output: { type: 'string', short: 'o' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(INJECT_HELP)
    return EXIT_OK
  }
  if (values.filename === undefined) throw new UsageError('inject', '-f FILE is required')
  const options = injectorOptions('inject', values)
  const source = values.filename === '-' ? '<stdin>' : values.filename
  let text: string
  try {
    text = readFileSync(values.filename === '-' ? 0 : values.filename, 'utf8')
  } catch (err) {
    process.stderr.write(`svidecar inject: cannot read ${source}: ${(err as Error).message}\n`)
    return EXIT_FAILURE
  }
  let result: ReturnType<typeof injectYaml>
  try {
    result = injectYaml(text, options, source)
  } catch (err) {
    if (!isSvidecarError(err)) throw err
    process.stderr.write(`svidecar inject: ${err.code}: ${err.message}\n`)
    return EXIT_FAILURE
  }
  for (const r of result.reports) {
    const what = `${r.kind}${r.name === '' ? '' : ` ${r.name}`}`
    if (!r.injected && r.reason !== '' && !r.reason.endsWith('not a kind svidecar injects into')) {
      process.stderr.write(
        `svidecar inject: ${source}: document ${r.index}: ${what}: not injected: ${r.reason}\n`,
      )
    }
    for (const w of r.warnings)
      process.stderr.write(`${w.replace(/^svidecar: /, `svidecar inject: ${what}: `)}\n`)
  }
  if (values.output === undefined) process.stdout.write(result.text)
  else writeFileSync(values.output, result.text)
  return EXIT_OK
}

export async function runInjectWebhook(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...INJECTOR_OPTIONS,
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      address: { type: 'string' },
      'reload-interval': { type: 'string' },
      'log-level': { type: 'string' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(WEBHOOK_HELP)
    return EXIT_OK
  }
  const command = 'inject-webhook'
  const certFile = values['tls-cert']
  const keyFile = values['tls-key']
  if (certFile === undefined || keyFile === undefined)
    throw new UsageError(command, '--tls-cert and --tls-key are required')
  const address = parseHostPort(values.address ?? '[::]:8443')
  if (typeof address === 'string') throw new UsageError(command, `--address: ${address}`)
  const interval = Number(values['reload-interval'] ?? '10')
  if (!(interval > 0 && interval <= 3600)) {
    throw new UsageError(command, '--reload-interval: expected seconds from 0.001 to 3600')
  }
  const level = oneOf<Level>(
    command,
    'log-level',
    values['log-level'],
    ['debug', 'info', 'warn', 'error'],
    'info',
  )
  const injector = injectorOptions(command, values)
  const logger = createLogger({ level })
  let webhook: Awaited<ReturnType<typeof startWebhook>>
  try {
    webhook = await startWebhook({
      host: address.host,
      port: address.port,
      certFile,
      keyFile,
      reloadIntervalMs: Math.round(interval * 1000),
      injector,
      logger,
    })
  } catch (err) {
    logger.error('inject-webhook cannot start', { error: err })
    return EXIT_FAILURE
  }
  logger.info('inject-webhook started', {
    address: formatHostPort({ host: webhook.address.address, port: webhook.address.port }),
    mode: injector.mode,
    workloadApi: injector.workloadApi,
    image: injector.image,
    excludedNamespaces: injector.excludedNamespaces,
  })
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info('inject-webhook stopping', { signal })
      resolve()
    }
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
  })
  await webhook.close()
  return EXIT_OK
}
