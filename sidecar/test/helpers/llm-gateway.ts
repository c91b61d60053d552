/**
 * One agent sidecar as an LLM gateway in front of the local model server
 * (llm-upstream.ts), on the dev Workload API, for the usage and budget
 * suites; and a real redis-server per test for shared budgets.
 *
 * The LLM lens is another stage's job. Until it is wired into the outbound
 * listener, `testLens` stands in for it (test-only): it reads the same few
 * fields from the body and sets `exchange.attributes.llm` as the lens
 * contract (src/lens/llm/call.ts) says.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { Writable } from 'node:stream'
import { DevWorkloadApi } from '@svidecar/certs'
import type { Test } from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { parseConfig } from '../../src/config/index.ts'
import { LLM_ATTRIBUTE, type LlmApi, type LlmCall } from '../../src/lens/llm/call.ts'
import { loadTokenizer } from '../../src/lens/llm/usage/estimate.ts'
import { createLogger } from '../../src/observe/log.ts'
import type { Stage } from '../../src/pipeline/stage.ts'
import { Sidecar } from '../../src/sidecar.ts'
import { AGENT } from './mesh.ts'

export { AGENT }

const PATHS: Record<string, LlmApi> = {
  '/v1/chat/completions': 'openai.chat',
  '/v1/completions': 'openai.completions',
  '/v1/responses': 'openai.responses',
  '/v1/embeddings': 'openai.embeddings',
  '/v1/messages': 'anthropic.messages',
  '/v1/messages/count_tokens': 'anthropic.count_tokens',
}

/** Test-only stand-in for the LLM lens (see the header). */
export function testLens(): Stage {
  return {
    name: 'test-llm-lens',
    bodyLimit: 4 * 1024 * 1024,
    onRequest(exchange) {
      const api = PATHS[exchange.path]
      if (api === undefined || exchange.method !== 'POST') return undefined
      let body: Record<string, unknown> = {}
      try {
        body = JSON.parse((exchange.body ?? Buffer.alloc(0)).toString('utf8')) as Record<string, unknown>
      } catch {
        return undefined
      }
      const max = body.max_tokens ?? body.max_completion_tokens ?? body.max_output_tokens
      const call: LlmCall = {
        api,
        ...(typeof body.model === 'string' ? { model: body.model } : {}),
        stream: body.stream === true,
        ...(typeof max === 'number' ? { maxTokens: max } : {}),
        provider: 'local',
      }
      exchange.attributes[LLM_ATTRIBUTE] = call
      exchange.lens = 'llm'
      exchange.errorStyle = api.startsWith('anthropic.') ? 'anthropic' : 'openai'
      return undefined
    },
  }
}

const quiet = createLogger({ level: 'error', stream: { write: () => true } })

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

/** The agent's sidecar routing everything to `upstreamUrl`, with `yaml` appended to its config. */
export async function startGateway(
  t: Test,
  api: DevWorkloadApi,
  upstreamUrl: string,
  yaml = '',
): Promise<Gateway> {
  const audit: string[] = []
  const sidecar = await Sidecar.start(
    parseConfig(
      `
workloadApi: { socket: "${api.endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
drainTimeout: 2s
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - upstream: llm
upstreams:
  llm: { url: "${upstreamUrl}", allowPlaintext: true }
${yaml}`,
      'gateway.yaml',
      {},
    ),
    {
      identity: { backoff: () => ({ next: () => 50, reset() {} }) },
      logger: quiet,
      auditStdout: new Writable({
        write(chunk, _encoding, done) {
          for (const line of String(chunk).split('\n')) if (line !== '') audit.push(line)
          done()
        },
      }),
      outboundLenses: () => [testLens()],
    },
  )
  t.teardown(() => sidecar.destroy())
  await sidecar.identity.waitReady(5000)
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
}

/** A real redis-server on a free loopback port, no persistence, stopped at teardown. */
export async function startRedis(t: Test): Promise<RedisServer> {
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
        '--appendonly',
        'no',
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
  t.teardown(stop)
  return { url: `redis://127.0.0.1:${port}/0`, port, stop, start }
}
