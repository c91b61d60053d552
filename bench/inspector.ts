/**
 * An LLM sidecar started as bench/llm.ts starts it, with `--inspect` on a
 * loopback port, driven over the inspector protocol by the profilers
 * (bench/alloc-profile.ts, bench/cpu-profile.ts), and the calls they profile.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { imageNodeFlags } from '../test/harness/image.ts'
import { startLlmSidecar, startModelServer, startWorkloadApi } from './llm-sidecar.ts'
import { openLoop } from './open-loop.ts'

export interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}

export interface InspectedSidecar {
  send(method: string, params?: Record<string, unknown>): Promise<unknown>
  /** `n` chat calls (`kind` stream or json) at `rate` per second, open loop; the number that completed. */
  calls(kind: string, n: number, rate: number): Promise<number>
  close(): Promise<void>
}

const CHAT = {
  model: 'gpt-4o',
  messages: [{ role: 'user', content: 'Say hello in twenty tokens.'.padEnd(900, ' .') }],
  max_tokens: 64,
}

export async function startInspectedSidecar(): Promise<InspectedSidecar> {
  const here = fileURLToPath(new URL('.', import.meta.url))
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  const dir = mkdtempSync(join(tmpdir(), 'svidecar-bench-inspect-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const upstreamPort = await startModelServer(0, { tokens: 20, intervalMs: 2 })
  const sidecar = await startLlmSidecar({
    dir,
    core: 1,
    nodeFlags: ['--conditions=svidecar-source', ...imageNodeFlags(), `--inspect=127.0.0.1:${port}`],
    entry: join(here, '..', 'sidecar', 'src', 'cli', 'main.ts'),
    socket: await startWorkloadApi(),
    upstreamPort,
  })
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{
    webSocketDebuggerUrl: string
  }>
  // Node's own WebSocket client (global since Node 22).
  const ws = new WebSocket(targets[0]?.webSocketDebuggerUrl as string)
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true })
    ws.addEventListener('error', reject, { once: true })
  })
  let nextId = 1
  const pending = new Map<number, { resolve: (result: unknown) => void; reject: (err: Error) => void }>()
  ws.addEventListener('message', (event) => {
    const msg = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: unknown }
    if (msg.id === undefined) return
    const waiter = pending.get(msg.id)
    pending.delete(msg.id)
    if (msg.error !== undefined) waiter?.reject(new Error(`inspector: ${JSON.stringify(msg.error)}`))
    else waiter?.resolve(msg.result)
  })
  const pool = new Pool(`http://${sidecar.egress}`, { connections: 64, pipelining: 1 })
  return {
    send: (method, params = {}) =>
      new Promise<unknown>((resolve, reject) => {
        const id = nextId++
        pending.set(id, { resolve, reject })
        ws.send(JSON.stringify({ id, method, params }))
      }),
    async calls(kind, n, rate) {
      const body = JSON.stringify(kind === 'stream' ? { ...CHAT, stream: true } : CHAT)
      const done = await openLoop({ rate, seconds: n / rate, name: kind }, async () => {
        const res = await pool.request({
          method: 'POST',
          path: '/v1/chat/completions',
          headers: {
            'content-type': 'application/json',
            authorization: 'Bearer sk-the-agent-holds-no-real-key',
          },
          body,
        })
        await res.body.text()
        return true
      })
      return done.length
    },
    async close() {
      ws.close()
      await pool.close()
      sidecar.child.kill('SIGTERM')
    },
  }
}

/** Where a frame comes from, short: `name file:line`, the sidecar's own files as `src/...`. */
export function frameKey(f: CallFrame): string {
  return `${f.functionName || '(anonymous)'} ${f.url
    .replace(/.*node_modules\//, '')
    .replace(/.*\/sidecar\/src\//, 'src/')
    .replace(/^node:/, '')}:${f.lineNumber + 1}`
}

/** Whether a frame is the sidecar's own code. */
export const ours = (f: CallFrame): boolean => f.url.includes('/sidecar/src/')
