/** `svidecar config check FILE`: validates a configuration without starting anything. */
import { parseArgs } from 'node:util'
import { loadConfig } from '../config/index.ts'
import { isSvidecarError } from '../errors/index.ts'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './usage.ts'

const HELP = `Usage: svidecar config check FILE

Validates a configuration file without starting anything: YAML syntax, the
schema (unknown keys are errors), and what would break at run time (SPIFFE
IDs, two listeners on one port, CA files, timeouts, routes to known
upstreams that an earlier route does not already take), and the policy
file that \`policy.file\` names. The environment
overrides of \`svidecar run\` apply; a bad value from one names its variable.
Prints every problem with its file:line:column and field.

Exit codes: 0 valid, 1 invalid or unreadable, 2 usage error.

Options:
  -h, --help   show this help
`

export async function runConfig(args: string[]): Promise<number> {
  const [sub, ...rest] = args
  if (sub === undefined) {
    process.stderr.write(HELP)
    return EXIT_USAGE
  }
  if (sub === '--help' || sub === '-h') {
    process.stdout.write(HELP)
    return EXIT_OK
  }
  if (sub !== 'check') {
    process.stderr.write(`svidecar config: unknown subcommand "${sub}"\n\n${HELP}`)
    return EXIT_USAGE
  }
  const { values, positionals } = parseArgs({
    args: rest,
    options: { help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  })
  if (values.help) {
    process.stdout.write(HELP)
    return EXIT_OK
  }
  if (positionals.length !== 1) {
    process.stderr.write(`svidecar config check: expected one FILE\n\n${HELP}`)
    return EXIT_USAGE
  }
  const file = positionals[0] as string
  try {
    const config = loadConfig(file, process.env)
    // The policy source must load too: what `run` would refuse at start, `config check` refuses now.
    // Loaded here, not at the top: `svidecar run` imports printConfigError, and a sidecar without a policy
    // never loads the policy engines (the CEL library alone is ~10 MB of heap).
    const opened =
      config.policy === undefined ? undefined : (await import('../policy/open.ts')).openPolicy(config.policy)
    await opened?.close()
    for (const warning of config.warnings) process.stdout.write(`warning: ${warning}\n`)
    const upstreams = config.upstreams.size
    process.stdout.write(
      `${file}: ok (${config.inbound.length} inbound, ${config.outbound.length} outbound, ${upstreams} upstream${upstreams === 1 ? '' : 's'}${opened === undefined ? '' : `, ${opened.description}${opened.store === undefined ? '' : ` with ${plural(opened.store.rules, 'rule')}`}`})\n`,
    )
    return EXIT_OK
  } catch (err) {
    printConfigError(err)
    return EXIT_FAILURE
  }
}

export function printConfigError(err: unknown): void {
  if (isSvidecarError(err)) {
    process.stderr.write(`${err.code}: ${err.message}\n`)
    return
  }
  throw err
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`
}
