/**
 * `svidecar mcp serve-stdio` and `svidecar mcp connect`: the stdio bridges,
 * for MCP servers and agents that speak only stdio. Both log JSON lines to
 * stderr; `connect` keeps stdout for the protocol alone.
 */
import { parseArgs } from 'node:util'
import { StdioConnect } from '../mcp-bridge/connect.ts'
import { DEFAULT_MAX_LINE_BYTES } from '../mcp-bridge/lines.ts'
import { StdioBridgeServer } from '../mcp-bridge/serve-stdio.ts'
import { createLogger, type Level } from '../observe/log.ts'
import { EXIT_OK, EXIT_USAGE, UsageError } from './usage.ts'

const HELP = `Usage: svidecar mcp <serve-stdio|connect> [options]

Bridges between MCP's stdio transport and Streamable HTTP, so stdio-only MCP
servers and agents can sit behind svidecar's mTLS and policy.

  svidecar mcp serve-stdio [options] -- CMD [ARGS...]
      Runs CMD, a stdio MCP server, and serves it over Streamable HTTP on a
      loopback address, for an inbound listener's forwardTo. Each MCP session
      (each initialize) gets its own CMD process.

  svidecar mcp connect URL [--header "Name: value"]...
      A stdio MCP server for an agent: forwards stdin lines to the MCP server
      at URL (typically the agent sidecar's outbound listener, e.g.
      http://127.0.0.1:15001/mcp) and writes its messages to stdout.

Run \`svidecar mcp serve-stdio --help\` or \`svidecar mcp connect --help\` for options.
`

const SERVE_HELP = `Usage: svidecar mcp serve-stdio [options] -- CMD [ARGS...]

Runs the stdio MCP server CMD and exposes it over Streamable HTTP (protocol
2025-11-25 and older: POST, GET stream, DELETE, Mcp-Session-Id).

Each initialize starts a new CMD process for its session; a session ends on
DELETE, when its process exits (then its id gets 404 and the client
initializes again), or when idle past --session-idle-timeout.

Options:
  --listen HOST:PORT            where to listen (default 127.0.0.1:8080; keep it on loopback)
  --path PATH                   the MCP endpoint path (default /mcp)
  --request-timeout DURATION    answer a request the server has not answered with
                                error -31002 after this long; progress restarts the
                                clock (default 60s)
  --max-sessions N              concurrent sessions, one process each (default 16);
                                a new session past it gets 503 and error -31005
  --session-idle-timeout DURATION
                                end a session with no request in flight and no GET
                                stream after this long (default 30m; 0 = never)
  --max-line-bytes N            largest message in either direction (default ${DEFAULT_MAX_LINE_BYTES})
  --log-level LEVEL             debug, info, warn or error (default info)
  -h, --help                    show this help

Durations: 500ms, 10s, 5m, 1h. Logs are JSON lines on stderr; CMD's own
stderr passes through.

Example, behind an inbound listener with forwardTo http://127.0.0.1:8080:
  svidecar mcp serve-stdio -- npx -y @modelcontextprotocol/server-everything stdio
`

const CONNECT_HELP = `Usage: svidecar mcp connect URL [options]

A stdio MCP server that forwards every message to the MCP server at URL over
Streamable HTTP: each stdin line is POSTed, JSON and SSE replies and the
session's GET stream are written to stdout, one message per line. When the
session vanishes (404), the agent's initialize is replayed once for a new one.
Ends, deleting the session, when stdin closes.

Options:
  -H, --header "Name: value"   add a request header (repeatable; values are never logged)
  --max-line-bytes N           largest message in either direction (default ${DEFAULT_MAX_LINE_BYTES})
  --log-level LEVEL            debug, info, warn or error (default warn)
  -h, --help                   show this help

stdout carries only the protocol; logs are JSON lines on stderr.

Example, through the agent sidecar's outbound listener routing by host:
  svidecar mcp connect http://127.0.0.1:15001/mcp --header "Host: mcp.internal"
`

export async function runMcp(args: string[]): Promise<number> {
  const [sub, ...rest] = args
  if (sub === undefined) {
    process.stderr.write(`svidecar mcp: no subcommand given\n\n${HELP}`)
    return EXIT_USAGE
  }
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(HELP)
    return EXIT_OK
  }
  if (sub === 'serve-stdio') return serveStdio(rest)
  if (sub === 'connect') return connect(rest)
  throw new UsageError('mcp', `unknown subcommand "${sub}": expected serve-stdio or connect`)
}

async function serveStdio(args: string[]): Promise<number> {
  const dash = args.indexOf('--')
  const own = dash === -1 ? args : args.slice(0, dash)
  const command = dash === -1 ? [] : args.slice(dash + 1)
  const { values } = parseArgs({
    args: own,
    options: {
      listen: { type: 'string', default: '127.0.0.1:8080' },
      path: { type: 'string', default: '/mcp' },
      'request-timeout': { type: 'string', default: '60s' },
      'max-sessions': { type: 'string', default: '16' },
      'session-idle-timeout': { type: 'string', default: '30m' },
      'max-line-bytes': { type: 'string', default: String(DEFAULT_MAX_LINE_BYTES) },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(SERVE_HELP)
    return EXIT_OK
  }
  const [cmd, ...cmdArgs] = command
  if (cmd === undefined) throw new UsageError('mcp', 'serve-stdio needs the server command after --')
  const { host, port } = parseListen(values.listen)
  if (!values.path.startsWith('/')) throw new UsageError('mcp', '--path must start with /')
  const logger = createLogger({ level: level(values['log-level']) })
  const requestTimeoutMs = durationMs('--request-timeout', values['request-timeout'])
  if (requestTimeoutMs === 0) throw new UsageError('mcp', '--request-timeout must be longer than 0')
  const bridge = await StdioBridgeServer.start({
    command: cmd,
    args: cmdArgs,
    host,
    port,
    path: values.path,
    maxLineBytes: positiveInt('--max-line-bytes', values['max-line-bytes']),
    requestTimeoutMs,
    maxSessions: positiveInt('--max-sessions', values['max-sessions']),
    sessionIdleTimeoutMs: durationMs('--session-idle-timeout', values['session-idle-timeout']),
    logger,
  })
  logger.info('svidecar mcp serve-stdio listening', { url: bridge.url, command: cmd })
  if (!isLoopback(host))
    logger.warn('listening beyond loopback: anyone who can reach this address bypasses the sidecar', {
      listen: values.listen,
    })
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info('stopping: ending every session', { signal })
      bridge.close().finally(resolve)
    }
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
  })
  return EXIT_OK
}

async function connect(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      header: { type: 'string', short: 'H', multiple: true },
      'max-line-bytes': { type: 'string', default: String(DEFAULT_MAX_LINE_BYTES) },
      'log-level': { type: 'string', default: 'warn' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  })
  if (values.help) {
    process.stdout.write(CONNECT_HELP)
    return EXIT_OK
  }
  if (positionals.length !== 1) throw new UsageError('mcp', 'connect takes exactly one URL')
  const url = positionals[0] as string
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new UsageError('mcp', `"${url}" is not a URL`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new UsageError('mcp', 'the URL must be http: or https:')
  const headers: Record<string, string> = {}
  for (const h of values.header ?? []) {
    const colon = h.indexOf(':')
    const name = colon === -1 ? '' : h.slice(0, colon).trim()
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
      throw new UsageError('mcp', '--header must look like "Name: value"')
    headers[name.toLowerCase()] = h.slice(colon + 1).trim()
  }
  const bridge = new StdioConnect({
    url,
    headers,
    maxLineBytes: positiveInt('--max-line-bytes', values['max-line-bytes']),
    input: process.stdin,
    output: process.stdout,
    logger: createLogger({ level: level(values['log-level']) }),
  })
  await bridge.run()
  // stdin is done and the session deleted; nothing left should keep the process, but do not wait on it.
  setTimeout(() => process.exit(EXIT_OK), 1000).unref()
  return EXIT_OK
}

function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value)
  const port = Number(m?.[3])
  if (m === null || port > 65535) throw new UsageError('mcp', `--listen must be HOST:PORT, got "${value}"`)
  return { host: (m[1] ?? m[2]) as string, port }
}

function positiveInt(flag: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new UsageError('mcp', `${flag} must be a positive integer`)
  return Number(value)
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

function durationMs(flag: string, value: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(value.trim())
  const ms = m === null ? Number.NaN : Number(m[1]) * (m[2] === undefined ? 1 : (UNITS[m[2]] as number))
  if (!Number.isFinite(ms) || ms > 2 ** 31 - 1)
    throw new UsageError('mcp', `${flag} must be a duration such as 500ms, 10s, 5m or 1h`)
  return ms
}

function level(value: string): Level {
  if (value === 'debug' || value === 'info' || value === 'warn' || value === 'error') return value
  throw new UsageError('mcp', '--log-level must be debug, info, warn or error')
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}
