/**
 * What the LLM benchmarks share: the local model server in its own process,
 * and svidecar started as an LLM egress the way a user would run it (LLM
 * lens, policy on `llm.model`, provider key from a file, an in-memory budget
 * reserved and settled on every call, audit lines on stdout).
 */
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DevCa, DevWorkloadApi } from '@svidecar/certs'
import { firstLine, pinned, sidecarStarted } from './procs.ts'

const here = fileURLToPath(new URL('.', import.meta.url))

export interface UpstreamShape {
  /** Content events (one token each) per reply. */
  tokens: number
  /** Milliseconds between stream events. */
  intervalMs: number
}

/** Starts the model server pinned to `core`; its port. */
export async function startModelServer(core: number, shape: UpstreamShape): Promise<number> {
  const child = pinned(core, process.execPath, [
    join(here, 'llm-upstream-main.ts'),
    JSON.stringify({ tokens: shape.tokens, intervalMs: shape.intervalMs, models: ['gpt-4o'] }),
  ])
  return Number(await firstLine(child, /^\d+$/))
}

/** A dev Workload API that hands the bench agent its SVID; its socket. */
export async function startWorkloadApi(): Promise<string> {
  const ca = DevCa.create({ trustDomain: 'example.org' })
  const api = await DevWorkloadApi.start({
    ca,
    workloads: [{ spiffeId: 'spiffe://example.org/bench/agent', hint: 'agent' }],
  })
  return api.endpoint
}

export interface StartedSidecar {
  child: ChildProcess
  pid: number
  /** host:port of the outbound listener the agent calls. */
  egress: string
  /** host:port of the admin listener. */
  admin: string
}

/**
 * Writes the key, policy and config into `dir` and starts `node [flags] entry run --config …` pinned to `core`.
 * `entry` is the compiled `dist/cli/main.js` or, with `--conditions=svidecar-source` among the flags, the
 * sources' `src/cli/main.ts`.
 */
export async function startLlmSidecar(opts: {
  dir: string
  core: number
  nodeFlags: string[]
  entry: string
  socket: string
  upstreamPort: number
}): Promise<StartedSidecar> {
  const { dir } = opts
  const key = join(dir, 'openai.key')
  writeFileSync(key, 'sk-bench-provider-key\n')
  const policy = join(dir, 'policy.yaml')
  writeFileSync(
    policy,
    `version: 1
rules:
  - id: bench-agent-models
    effect: allow
    subjects: [spiffe://example.org/bench/agent]
    resources:
      - { kind: llm.model, name: "gpt-*" }
`,
  )
  const file = join(dir, 'svidecar.yaml')
  writeFileSync(
    file,
    `workloadApi: { socket: "${opts.socket}", hint: agent }
admin: { address: "127.0.0.1:0" }
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - { match: { pathPrefix: /v1 }, lens: llm }
upstreams:
  model: { url: "http://127.0.0.1:${opts.upstreamPort}", allowPlaintext: true }
llm:
  providers:
    local:
      kind: openai
      upstream: model
      models: ["*"]
      credential: { file: "${key}" }
policy: { file: "${policy}" }
# Counted and reserved on every call like a real budget, never exhausted in the run.
budgets:
  limits:
    - name: bench
      subjects: ["spiffe://example.org/bench/*"]
      tokensPerMinute: 1000000000
      requestsPerMinute: 100000000
`,
  )
  const child = pinned(opts.core, process.execPath, [...opts.nodeFlags, opts.entry, 'run', '--config', file])
  child.stdout?.resume()
  const started = (await sidecarStarted(child, 'svidecar', 60_000)) as {
    admin: string
    outbound: Record<string, string>
  }
  return { child, pid: child.pid as number, egress: started.outbound.egress as string, admin: started.admin }
}
