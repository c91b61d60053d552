/**
 * An agent sidecar whose outbound listener is an LLM gateway: every /v1 path goes through the LLM lens to the
 * local model server (helpers/llm-upstream.ts) as two providers, `anthropic` (claude-*, key from an
 * environment variable) and `openai` (every other model, key from a file that tests may rewrite). The policy
 * lets the agent use gpt-4o-mini and claude-test-small only. Each call makes fresh random keys.
 */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import { DevWorkloadApi } from '@svidecar/certs'
import type { Test } from 'tap'
import { createLogger } from '../../src/observe/log.ts'
import type { Sidecar } from '../../src/sidecar.ts'
import { type LlmUpstream, startLlmUpstream } from './llm-upstream.ts'
import { startTestSidecar } from './test-sidecar.ts'

export const AGENT = 'spiffe://example.org/agent'

export const LLM_POLICY = `version: 1
rules:
  - id: agent-models
    effect: allow
    subjects: [${AGENT}]
    resources:
      - { kind: llm.model, name: gpt-4o-mini }
      - { kind: llm.model, name: claude-test-small }
`

export interface LlmSidecarOptions {
  /** YAML appended under `llm:` (two-space indent for its fields, four for more providers). */
  llm?: string
  policy?: string
  /** Write the OpenAI key file before start (default true). */
  writeKey?: boolean
  /** Where audit lines go (default: nowhere). */
  auditStdout?: Writable
  /** The whole `policy:` value as YAML (another engine), instead of the built-in engine on `policy`. */
  policyConfig?: string
  /** Send the providers' traffic here instead of the local model server (a test's own misbehaving server). */
  upstreamUrl?: string
}

export interface LlmSidecar {
  outbound: string
  admin: string
  upstream: LlmUpstream
  sidecar: Sidecar
  openaiKeyFile: string
  /** Everything the sidecar logged (level debug). */
  logs: { text: string }
  keys: { openai: string; anthropic: string }
}

let instances = 0

export async function startLlmSidecar(t: Test, options: LlmSidecarOptions = {}): Promise<LlmSidecar> {
  const keys = {
    openai: `sk-sidecar-${randomBytes(12).toString('hex')}`,
    anthropic: `sk-ant-sidecar-${randomBytes(12).toString('hex')}`,
  }
  const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: AGENT, hint: 'agent' }] })
  t.teardown(() => api.close())
  const upstream = await startLlmUpstream()
  t.teardown(() => upstream.close())
  const dir = t.testdir()
  const policy = join(dir, 'policy.yaml')
  writeFileSync(policy, options.policy ?? LLM_POLICY)
  const openaiKeyFile = join(dir, 'openai-key')
  if (options.writeKey !== false) writeFileSync(openaiKeyFile, `${keys.openai}\n`)
  const logs = { text: '' }
  const logger = createLogger({
    level: 'debug',
    stream: {
      write: (s: string) => {
        logs.text += s
        return true
      },
    },
  })
  // A variable of its own per sidecar: the key is read from the environment when the sidecar starts.
  const env = `TEST_ANTHROPIC_KEY_${++instances}`
  process.env[env] = keys.anthropic
  t.teardown(() => {
    delete process.env[env]
  })
  const sidecar = await startTestSidecar(
    t,
    { socket: api.endpoint, hint: 'agent' },
    `outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes:
      - match: { pathPrefix: /v1 }
        lens: llm
upstreams:
  models:
    url: "${options.upstreamUrl ?? upstream.url}"
    allowPlaintext: true
policy: ${options.policyConfig ?? `{ file: "${policy}" }`}
llm:
  providers:
    anthropic:
      kind: anthropic
      upstream: models
      models: ["claude-*"]
      credential: { env: ${env} }
    openai:
      kind: openai
      upstream: models
      credential: { file: "${openaiKeyFile}" }
${options.llm ?? ''}`,
    { logger, ...(options.auditStdout === undefined ? {} : { auditStdout: options.auditStdout }) },
  )
  await sidecar.identity.waitReady(5000)
  return {
    outbound: `http://127.0.0.1:${sidecar.addresses.outbound.egress?.port}`,
    admin: `http://127.0.0.1:${sidecar.addresses.admin.port}`,
    upstream,
    sidecar,
    openaiKeyFile,
    logs,
    keys,
  }
}
