/** `svidecar config check FILE`: validates a configuration without starting anything. */
import { parseArgs } from 'node:util'
import { loadConfig } from '../config/index.ts'
import { isSvidecarError } from '../errors/index.ts'

const HELP = `Usage: svidecar config check FILE

Validates a configuration file: YAML syntax, the schema (unknown keys are
errors), and the meaning (SPIFFE IDs, addresses, routes to known upstreams).
Prints every problem with its file, line and field; exits 1 if there is any.

Options:
  -h, --help   show this help
`

export async function runConfig(args: string[]): Promise<number> {
  const [sub, ...rest] = args
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(HELP)
    return sub === undefined ? 2 : 0
  }
  if (sub !== 'check') {
    process.stderr.write(`svidecar config: unknown subcommand "${sub}"\n\n${HELP}`)
    return 2
  }
  const { values, positionals } = parseArgs({
    args: rest,
    options: { help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  })
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  if (positionals.length !== 1) {
    process.stderr.write(`svidecar config check: expected one FILE\n\n${HELP}`)
    return 2
  }
  const file = positionals[0] as string
  try {
    const config = loadConfig(file, process.env)
    for (const warning of config.warnings) process.stdout.write(`warning: ${warning}\n`)
    process.stdout.write(
      `${file}: ok (${config.inbound.length} inbound, ${config.outbound.length} outbound, ${config.upstreams.size} upstreams)\n`,
    )
    return 0
  } catch (err) {
    printConfigError(err)
    return 1
  }
}

export function printConfigError(err: unknown): void {
  if (isSvidecarError(err)) {
    process.stderr.write(`${err.code}: ${err.message}\n`)
    return
  }
  throw err
}
