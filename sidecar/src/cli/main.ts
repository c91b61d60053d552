/**
 * The `svidecar` command line. Each subcommand lives in its own module and
 * is loaded only when used, so `svidecar --help` starts fast.
 */
import { readFileSync } from 'node:fs'
import { argv, exit, stderr, stdout } from 'node:process'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, isUsageError } from './usage.ts'

interface Command {
  summary: string
  run: (args: string[]) => Promise<number>
}

const COMMANDS: Record<string, Command> = {
  run: {
    summary: 'run the sidecar: svidecar run --config FILE',
    run: async (args) => (await import('./run.ts')).runRun(args),
  },
  config: {
    summary: 'validate a configuration: svidecar config check FILE',
    run: async (args) => (await import('./config-check.ts')).runConfig(args),
  },
  policy: {
    summary: 'check a policy file or explain a decision: svidecar policy check FILE | explain ...',
    run: async (args) => (await import('./policy.ts')).runPolicy(args),
  },
  mcp: {
    summary: 'stdio bridges: svidecar mcp serve-stdio -- CMD ARGS | mcp connect URL',
    run: async (args) => (await import('./mcp.ts')).runMcp(args),
  },
  inject: {
    summary: 'add the sidecar to Kubernetes manifests, offline: svidecar inject -f FILE',
    run: async (args) => (await import('./inject.ts')).runInject(args),
  },
  'inject-webhook': {
    summary: 'serve the Kubernetes admission webhook that injects the sidecar',
    run: async (args) => (await import('./inject.ts')).runInjectWebhook(args),
  },
  demo: {
    summary: 'run a dev Workload API and watch an SVID rotate (no SPIRE needed)',
    run: async (args) => (await loadDemo()).runDemo(args),
  },
}

/** The demo runs on the dev PKI (`@svidecar/certs`), a dev dependency the container image leaves out. */
async function loadDemo(): Promise<typeof import('./demo.ts')> {
  try {
    return await import('./demo.ts')
  } catch (err) {
    const e = err as { code?: string; message?: string }
    if (e.code === 'ERR_MODULE_NOT_FOUND' && e.message?.includes('@svidecar/certs')) {
      throw new Error(
        'svidecar demo needs the dev PKI (@svidecar/certs), which production installs leave out; run it from a checkout (`npm ci && npm start`)',
      )
    }
    throw err
  }
}

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length))
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
  return [
    'svidecar: a SPIFFE-aware sidecar for AI agents',
    '',
    'Usage: svidecar <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Options:',
    '  -h, --help     show this help',
    '  -V, --version  print the version',
    '',
    'Run `svidecar <command> --help` for the options of a command.',
    'Exit codes: 0 success, 1 failure (e.g. an invalid configuration), 2 usage error.',
    '',
  ].join('\n')
}

/** The version of the sidecar package: dist/cli/ and src/cli/ both sit two levels below package.json. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return pkg.version
}

export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args
  if (name === '--help' || name === '-h' || name === 'help') {
    stdout.write(usage())
    return EXIT_OK
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    stdout.write(`svidecar ${version()}\n`)
    return EXIT_OK
  }
  if (name === undefined) {
    stderr.write(`svidecar: no command given\n\n${usage()}`)
    return EXIT_USAGE
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    stderr.write(`svidecar: unknown command "${name}"\n\n${usage()}`)
    return EXIT_USAGE
  }
  try {
    return await command.run(rest)
  } catch (err) {
    if (!isUsageError(err)) throw err
    stderr.write(`svidecar ${name}: ${err.message}\nRun \`svidecar ${name} --help\` for its options.\n`)
    return EXIT_USAGE
  }
}

main(argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    stderr.write(`svidecar: ${err instanceof Error ? err.message : String(err)}\n`)
    exit(EXIT_FAILURE)
  },
)
