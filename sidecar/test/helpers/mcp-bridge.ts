/**
 * The pieces the stdio bridge tests share: the real server-everything as a
 * stdio command, a bridge in this process, and an SDK client over Streamable
 * HTTP.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { Test } from 'tap'
import { DEFAULT_MAX_LINE_BYTES } from '../../src/mcp-bridge/lines.ts'
import { type ServeStdioOptions, StdioBridgeServer } from '../../src/mcp-bridge/serve-stdio.ts'
import { createLogger, type Logger } from '../../src/observe/log.ts'

const require = createRequire(import.meta.url)

/** `node <server-everything> stdio`: the official everything server over stdio. */
export const EVERYTHING: readonly string[] = [
  join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist', 'index.js'),
  'stdio',
]

export const sink = () =>
  new Writable({
    write(_chunk, _encoding, done) {
      done()
    },
  })

/** A logger whose records a test can read back. */
export function recordingLogger(): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = []
  const logger = createLogger({
    level: 'debug',
    stream: { write: (line: string) => records.push(JSON.parse(line) as Record<string, unknown>) },
  })
  return { logger, records }
}

export async function startBridge(
  t: Test,
  options: Partial<ServeStdioOptions> & { command?: string; args?: readonly string[] } = {},
): Promise<StdioBridgeServer> {
  const bridge = await StdioBridgeServer.start({
    command: process.execPath,
    args: EVERYTHING,
    host: '127.0.0.1',
    port: 0,
    path: '/mcp',
    maxLineBytes: DEFAULT_MAX_LINE_BYTES,
    requestTimeoutMs: 30_000,
    maxSessions: 16,
    sessionIdleTimeoutMs: 0,
    logger: createLogger({ level: 'error', stream: { write: () => true } }),
    childStderr: sink(),
    ...options,
  })
  t.teardown(() => bridge.close())
  return bridge
}

export async function sdkClient(
  t: Test,
  url: string,
  capabilities: ConstructorParameters<typeof Client>[1] = {},
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'svidecar-test', version: '1.0.0' }, capabilities)
  const transport = new StreamableHTTPClientTransport(new URL(url))
  await client.connect(transport)
  t.teardown(() => client.close())
  return { client, transport }
}

/** Polls `check` until it holds or the deadline passes (no sleeps standing in for a wait). */
export async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * A deliberately misbehaving stdio MCP server. It is a fake on purpose: it
 * stands in for servers that hang, crash, print junk or send huge answers,
 * which no real server does on request. It answers `initialize`, echoes
 * `echo`, and misbehaves on `slow` (never answers), `crash` (exits 3), `big`
 * (an answer of params.bytes bytes), `noise` (a non-JSON line, then the
 * answer), `ticks` (params.count progress notifications params.everyMs apart, then the answer), `notify` (a log notification, then the answer). Every line it
 * reads is copied to stderr, so a test can see what reached it.
 */
export const MISBEHAVING_SERVER = `
import { createInterface } from 'node:readline'
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
createInterface({ input: process.stdin }).on('line', (line) => {
  process.stderr.write('got ' + line + '\\n')
  const m = JSON.parse(line)
  if (m.id === undefined) return
  const answer = (result) => send({ result, jsonrpc: '2.0', id: m.id })
  switch (m.method) {
    case 'initialize':
      return answer({ protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'misbehaving', version: '0' } })
    case 'echo': return answer(m.params)
    case 'slow': return
    case 'crash': process.exit(3)
    case 'big': return answer({ blob: 'x'.repeat(m.params.bytes) })
    case 'noise':
      process.stdout.write('this is not JSON\\n')
      return answer({ ok: true })
    case 'ticks': {
      let n = 0
      const tick = setInterval(() => {
        n++
        send({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: m.params._meta.progressToken, progress: n } })
        if (n === m.params.count) {
          clearInterval(tick)
          answer({ ticks: n })
        }
      }, m.params.everyMs)
      return
    }
    case 'notify':
      send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'hello' } })
      return answer({ ok: true })
    default:
      return send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } })
  }
})
`

const SVIDECAR_BIN = fileURLToPath(new URL('../../bin/svidecar.js', import.meta.url))

/** The argv of `svidecar mcp connect URL ...args` from the checkout, for StdioClientTransport or spawn. */
export function connectCommand(url: string, args: string[] = []): { command: string; args: string[] } {
  return {
    command: process.execPath,
    args: ['--conditions=svidecar-source', SVIDECAR_BIN, 'mcp', 'connect', url, ...args],
  }
}

/** `svidecar mcp connect` as a process a test talks to line by line. */
export interface ConnectProcess {
  send(line: string): void
  /** Every stdout line so far, parsed (a line that is not JSON fails the test through `stdoutJunk`). */
  readonly lines: Array<Record<string, unknown>>
  readonly stdoutJunk: string[]
  readonly stderr: () => string
  next(match: (m: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>>
  closeStdin(): void
  readonly exited: Promise<number | null>
}

export function spawnConnect(t: Test, url: string, args: string[] = []): ConnectProcess {
  const cmd = connectCommand(url, args)
  const child = spawn(cmd.command, cmd.args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  const lines: Array<Record<string, unknown>> = []
  const stdoutJunk: string[] = []
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => {
    stderr += String(c)
  })
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      stdoutJunk.push(line)
    }
  })
  return {
    send: (line) => child.stdin.write(`${line}\n`),
    lines,
    stdoutJunk,
    stderr: () => stderr,
    async next(match, what) {
      await until(() => lines.some(match), what)
      return lines.find(match) as Record<string, unknown>
    },
    closeStdin: () => child.stdin.end(),
    exited,
  }
}
