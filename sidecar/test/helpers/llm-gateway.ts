/**
 * One agent sidecar as an LLM gateway in front of the local model server
 * (llm-upstream.ts), on the dev Workload API, for the usage and budget
 * suites; and a real redis-server per test for shared budgets.
 * The sidecar runs the real LLM lens: OpenAI-style calls go to the
 * `local` provider, Anthropic-style ones to `local-anthropic`, both the
 * same model server.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { Writable } from 'node:stream'
import { DevWorkloadApi } from '@svidecar/certs'
import type { Test } from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { loadTokenizer } from '../../src/lens/llm/usage/estimate.ts'
import type { Sidecar } from '../../src/sidecar.ts'
import { AGENT } from './mesh.ts'
import { startTestSidecar } from './test-sidecar.ts'

export { AGENT }

// The provider key comes from the environment, as a Secret's would (read when the sidecar starts).
process.env.SVIDECAR_TEST_ANTHROPIC_KEY ??= 'sk-ant-test-gateway-key'

export async function startDevApi(t: Test): Promise<DevWorkloadApi> {
  const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: AGENT, hint: 'agent' }] })
  t.teardown(() => api.close())
  return api
}

export interface Gateway {
  sidecar: Sidecar
  /** http://127.0.0.1:port of the outbound listener. */
  url: string
  audit: string[]
}

/**
 * The agent's sidecar routing everything to `upstreamUrl`, with `yaml` appended to its config. It is ready when
 * this resolves, unless `waitReady` is false (a Workload API that serves it no SVID).
 */
export async function startGateway(
  t: Test,
  api: DevWorkloadApi,
  upstreamUrl: string,
  yaml = '',
  { waitReady = true }: { waitReady?: boolean } = {},
): Promise<Gateway> {
  const audit: string[] = []
  const sidecar = await startTestSidecar(
    t,
    { socket: api.endpoint, hint: 'agent' },
    `outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - { match: { pathPrefix: /v1 }, lens: llm }
upstreams:
  llm: { url: "${upstreamUrl}", allowPlaintext: true }
llm:
  providers:
    local: { kind: openai-compatible, upstream: llm }
    local-anthropic: { kind: anthropic, upstream: llm, credential: { env: SVIDECAR_TEST_ANTHROPIC_KEY } }
${yaml}`,
    {
      auditStdout: new Writable({
        write(chunk, _encoding, done) {
          for (const line of String(chunk).split('\n')) if (line !== '') audit.push(line)
          done()
        },
      }),
    },
  )
  if (waitReady) await sidecar.identity.waitReady(5000)
  // The sidecar loads the tokenizer on the first LLM call; tests that check estimates want it there already.
  await loadTokenizer()
  return { sidecar, url: `http://127.0.0.1:${sidecar.addresses.outbound.egress?.port}`, audit }
}

async function freePort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  s.close()
  await once(s, 'close')
  return port
}

export interface RedisServer {
  readonly url: string
  readonly port: number
  stop(): Promise<void>
  start(): Promise<void>
  /** SIGSTOP: Redis keeps its connections but answers nothing until `resume` (a stall, a slow network). */
  pause(): void
  resume(): void
}

/**
 * A real redis-server on a free loopback port, stopped at teardown. No persistence, unless `persistIn` names a
 * directory: then every write is in its append-only file before Redis answers, so a Redis killed and started
 * again comes back with its data (a restart or a network outage, as a replica sees it).
 */
export async function startRedis(t: Test, persistIn?: string): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async () => {
    const c = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        ...(persistIn === undefined
          ? ['--appendonly', 'no']
          : ['--dir', persistIn, '--appendonly', 'yes', '--appendfsync', 'always']),
        '--protected-mode',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    child = c
    let out = ''
    c.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
    })
    c.stderr?.on('data', (d: Buffer) => {
      out += d.toString()
    })
    await waitFor(
      () => out.includes('Ready to accept connections') || c.exitCode !== null,
      'redis-server ready',
    )
    if (c.exitCode !== null) throw new Error(`redis-server exited: ${out}`)
  }
  const stop = async () => {
    const c = child
    child = undefined
    if (c === undefined || c.exitCode !== null) return
    c.kill('SIGKILL')
    await once(c, 'exit')
  }
  await start()
  t.teardown(() => {
    if (child?.exitCode === null) child.kill('SIGCONT')
    return stop()
  })
  const signal = (s: NodeJS.Signals) => {
    if (child?.exitCode === null) child.kill(s)
  }
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    stop: async () => {
      // A stopped process would not see SIGKILL's exit until continued.
      signal('SIGCONT')
      await stop()
    },
    start,
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
  }
}
