/**
 * Exit codes of the `svidecar` command, one per kind of end: a script can
 * tell "you called it wrong" (2) from "it ran and failed" (1).
 */
export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

/** A command line that cannot be run as given: printed with a pointer to --help, exit 2. */
export class UsageError extends Error {
  readonly command: string
  constructor(command: string, message: string) {
    super(message)
    this.name = 'UsageError'
    this.command = command
  }
}

/** node:util parseArgs refusals (unknown option, missing value, stray argument) are usage errors too. */
export function isUsageError(err: unknown): err is Error & { command?: string } {
  if (err instanceof UsageError) return true
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')
}
