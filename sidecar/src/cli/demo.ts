/**
 * `svidecar demo`: the whole data plane on one machine with no SPIRE. A dev
 * Workload API (the real gRPC protocol on a unix socket) issues two
 * identities; an agent's sidecar sends traffic over mTLS to an MCP server's
 * sidecar, which hands it to a local app with the caller's verified SPIFFE
 * ID. The MCP server's sidecar enforces a small policy; the demo shows one
 * route it allows and one it denies, with the decisions. The agent's sidecar
 * is also its LLM gateway: the agent calls a local OpenAI-compatible model
 * server with no key, the sidecar decides the model by the agent's SPIFFE ID
 * and injects the key only it holds; one allowed (streamed) and one denied
 * model are called, with their audit lines. It prints each request, each
 * rotation, and how to send your own.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import { DevWorkloadApi } from '@svidecar/certs'
import { parseConfig } from '../config/index.ts'
import { startDemoApp } from '../dev/demo-app.ts'
import { startDemoModel } from '../dev/demo-model.ts'
import { on } from '../observe/events.ts'
import { createLogger } from '../observe/log.ts'
import { Sidecar } from '../sidecar.ts'
import { UsageError } from './usage.ts'

const HELP = `Usage: svidecar demo [options]

Runs a dev SPIFFE Workload API (no SPIRE needed), an agent's sidecar and an
MCP server's sidecar with a local app behind it, and sends a request from the
agent side over mTLS every few seconds. The MCP server's sidecar enforces a
demo policy: the agent may call /tools/**, nobody may call /admin/**; the demo
sends one request of each and prints the decisions. The agent's sidecar is
also its LLM gateway to a local OpenAI-compatible model server: the agent
holds no key, may use demo-small and not demo-large; the demo calls both and
prints the audit lines. SVIDs rotate at half their lifetime.
Stop with Ctrl-C.

Options:
  --ttl <seconds>       X.509-SVID lifetime; rotation comes at half of it (default 20)
  --rotations <n>       exit after n rotations (default: run until stopped)
  --interval <seconds>  time between demo requests (default 2)
  --trust-domain <td>   trust domain (default example.org)
  -h, --help            show this help
`

// The demo's own sidecars log only problems; the demo narrates the rest.
const quiet = createLogger({ level: 'warn' })

export async function runDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ttl: { type: 'string', default: '20' },
      rotations: { type: 'string' },
      interval: { type: 'string', default: '2' },
      'trust-domain': { type: 'string', default: 'example.org' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  const ttlSeconds = Number(values.ttl)
  if (!Number.isFinite(ttlSeconds) || ttlSeconds < 2)
    throw new UsageError('demo', `--ttl must be a number of seconds >= 2, got "${values.ttl}"`)
  const intervalMs = Number(values.interval) * 1000
  if (!Number.isFinite(intervalMs) || intervalMs < 100)
    throw new UsageError('demo', `--interval must be a number of seconds >= 0.1, got "${values.interval}"`)
  const maxRotations = values.rotations === undefined ? Number.POSITIVE_INFINITY : Number(values.rotations)
  if (!Number.isInteger(maxRotations) && maxRotations !== Number.POSITIVE_INFINITY)
    throw new UsageError('demo', `--rotations must be a whole number, got "${values.rotations}"`)
  const td = values['trust-domain']
  const agentId = `spiffe://${td}/demo/agent`
  const mcpId = `spiffe://${td}/demo/mcp-server`
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()}  ${line}\n`)

  const api = await DevWorkloadApi.start({
    trustDomain: td,
    x509SvidTtlMs: ttlSeconds * 1000,
    workloads: [
      { spiffeId: agentId, hint: 'agent' },
      { spiffeId: mcpId, hint: 'mcp' },
    ],
  })
  const app = await startDemoApp('x-spiffe-id')
  const policyDir = mkdtempSync(join(tmpdir(), 'svidecar-demo-'))
  const policyFile = join(policyDir, 'policy.yaml')
  writeFileSync(policyFile, demoPolicy(agentId, td))
  // The model server's key: in a file only the agent's sidecar reads (a Kubernetes Secret in a real pod).
  const modelKey = `sk-demo-${randomBytes(16).toString('hex')}`
  const model = await startDemoModel(modelKey)
  const keyFile = join(policyDir, 'model-key')
  writeFileSync(keyFile, modelKey, { mode: 0o600 })
  const agentPolicyFile = join(policyDir, 'agent-policy.yaml')
  writeFileSync(agentPolicyFile, agentPolicy(agentId))
  const server = await Sidecar.start(
    parseConfig(
      `workloadApi: { socket: "${api.endpoint}", hint: mcp }
admin: { address: "127.0.0.1:0" }
drainTimeout: 2s
inbound:
  - name: mcp
    address: "127.0.0.1:0"
    forwardTo: "${app.url}"
    authorize: { exact: "${agentId}" }
policy: { file: "${policyFile}" }
`,
      'demo (MCP server side)',
      {},
    ),
    { logger: quiet },
  )
  const inbound = server.addresses.inbound.mcp
  const agent = await Sidecar.start(
    parseConfig(
      `workloadApi: { socket: "${api.endpoint}", hint: agent }
admin: { address: "127.0.0.1:0" }
drainTimeout: 2s
outbound:
  - name: egress
    address: "127.0.0.1:0"
    routes: [{ upstream: mcp }]
  - name: llm
    address: "127.0.0.1:0"
    routes: [{ lens: llm }]
upstreams:
  mcp:
    url: "https://127.0.0.1:${inbound?.port}"
    spiffe: { exact: "${mcpId}" }
  model:
    url: "${model.url}"
    allowPlaintext: true
llm:
  providers:
    local:
      kind: openai-compatible
      upstream: model
      credential: { file: "${keyFile}" }
policy: { file: "${agentPolicyFile}" }
`,
      'demo (agent side)',
      {},
    ),
    // Only the model decisions of the agent's audit log are shown; its route decisions would repeat per request.
    { logger: quiet, auditStdout: auditFilter((line) => log(`audit: ${line}`)) },
  )
  await Promise.all([server.identity.waitReady(10_000), agent.identity.waitReady(10_000)])
  const outbound = `http://127.0.0.1:${agent.addresses.outbound.egress?.port}`
  const llm = `http://127.0.0.1:${agent.addresses.outbound.llm?.port}`
  const admin = agent.addresses.admin
  const serverAdmin = server.addresses.admin

  log('dev Workload API up; it issues:')
  for (const s of [agent, server]) {
    const svid = s.identity.current()?.svid
    if (svid)
      log(`  X.509-SVID ${svid.id} serial ${svid.serialNumber} valid until ${svid.notAfter.toISOString()}`)
  }
  process.stdout.write(`
  agent → [agent sidecar ${outbound}] ══ mTLS ══> [MCP sidecar 127.0.0.1:${inbound?.port}] → app ${app.url}

  Send your own request through the mesh:     curl ${outbound}/tools/list
  One the MCP server's policy denies (403):    curl ${outbound}/admin/reset
  The policy it enforces:                     ${policyFile}
  Call the LLM gateway with no key:           curl ${llm}/v1/chat/completions -d '{"model":"demo-small","messages":[]}'
  or any OpenAI SDK with baseURL ${llm}/v1 (demo-large is denied)
  Metrics of the agent's sidecar:             curl http://${admin.host}:${admin.port}/metrics
  Metrics of the MCP server's sidecar:        curl http://${serverAdmin.host}:${serverAdmin.port}/metrics
  Point your own SPIFFE client at the dev Workload API:
    export SPIFFE_ENDPOINT_SOCKET=${api.endpoint}

`)

  let rotations = 0
  let finish: (code: number) => void = () => {}
  const finished = new Promise<number>((resolve) => {
    finish = resolve
  })
  let lastSerial = agent.identity.current()?.svid.serialNumber
  const offRotation = agent.identity.onChange((snap) => {
    if (snap === undefined || snap.svid.serialNumber === lastSerial) return
    lastSerial = snap.svid.serialNumber
    rotations++
    log(
      `rotation ${rotations}: new X.509-SVID ${snap.svid.id} serial ${snap.svid.serialNumber} valid until ${snap.svid.notAfter.toISOString()}`,
    )
  })
  // The handshake the next request makes tells which server certificate it saw.
  let lastServerSerial = ''
  const offHandshake = on('tlsHandshake', (e) => {
    if (e.direction === 'outbound' && e.peerSerial) lastServerSerial = e.peerSerial
  })
  // The policy decisions of the MCP server's sidecar, for the first allowed request and every denied one.
  let shownAllow = false
  const offDecision = on('policyDecision', (e) => {
    if (e.listener !== 'mcp' || (e.decision === 'allow' && shownAllow)) return
    if (e.decision === 'allow') shownAllow = true
    log(
      `policy: ${e.decision.toUpperCase()} ${e.resource} for ${e.subject} by ${e.ruleId === undefined ? 'default deny' : `rule ${e.ruleId}`} (${e.reason}; traceparent ${e.traceparent})`,
    )
  })
  {
    const res = await fetch(`${outbound}/admin/reset`, { method: 'POST' })
    const body = (await res.json()) as { error?: { code: string; message: string } }
    log(
      `denied route: POST /admin/reset: ${res.status} ${body.error?.code ?? ''}: ${body.error?.message ?? ''}`,
    )
  }
  await llmCalls(llm, log)
  let n = 0
  const send = async () => {
    n++
    try {
      const res = await fetch(`${outbound}/tools/call/${n}`, { method: 'POST', body: JSON.stringify({ n }) })
      const body = (await res.json()) as { caller?: string; error?: { code: string } }
      if (res.ok) {
        log(
          `request ${n}: ${res.status} from the app; it saw caller ${body.caller} (server certificate serial ${lastServerSerial})`,
        )
      } else log(`request ${n}: ${res.status} ${body.error?.code ?? ''}`)
    } catch (err) {
      log(`request ${n}: failed: ${(err as Error).message}`)
    }
    if (rotations >= maxRotations) finish(0)
  }
  await send()
  const timer = setInterval(send, intervalMs)
  const onSignal = () => finish(0)
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const code = await finished
  clearInterval(timer)
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  offRotation()
  offHandshake()
  offDecision()
  await Promise.all([agent.close(2000), server.close(2000)])
  app.server.close()
  await model.close()
  await api.close()
  rmSync(policyDir, { recursive: true, force: true })
  log('stopped')
  return code
}

/** The agent's calls through its LLM gateway: an allowed model streamed, a denied one, the filtered model list. */
async function llmCalls(llm: string, log: (line: string) => void): Promise<void> {
  const chat = (model: string, stream: boolean) =>
    fetch(`${llm}/v1/chat/completions`, {
      method: 'POST',
      // What an agent with a made-up key sends: the sidecar drops it and injects the real one.
      headers: { 'content-type': 'application/json', authorization: 'Bearer not-a-real-key' },
      body: JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'Say hello.' }] }),
    })
  try {
    const res = await chat('demo-small', true)
    if (!res.ok || res.body === null) log(`LLM demo-small: ${res.status} ${await res.text()}`)
    else {
      let text = ''
      let events = 0
      let buffered = ''
      const decoder = new TextDecoder()
      for await (const bytes of res.body) {
        buffered += decoder.decode(bytes, { stream: true })
        let end = buffered.indexOf('\n\n')
        while (end !== -1) {
          const data = buffered.slice(0, end).replace(/^data: /, '')
          buffered = buffered.slice(end + 2)
          end = buffered.indexOf('\n\n')
          if (data === '[DONE]') continue
          events++
          const delta = (JSON.parse(data) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta
          text += delta?.content ?? ''
        }
      }
      log(`LLM demo-small (allowed, streamed): ${res.status}, ${events} events: "${text}"`)
    }
    const denied = await chat('demo-large', false)
    const body = (await denied.json()) as { error?: { code?: string; message?: string } }
    log(`LLM demo-large (denied): ${denied.status} ${body.error?.code ?? ''}: ${body.error?.message ?? ''}`)
    const list = (await (await fetch(`${llm}/v1/models`)).json()) as { data?: { id: string }[] }
    log(`LLM model list as the agent sees it: ${(list.data ?? []).map((m) => m.id).join(', ')}`)
  } catch (err) {
    log(`LLM calls failed: ${(err as Error).message}`)
  }
}

/** A stream for audit lines that shows the model decisions and drops the rest. */
function auditFilter(show: (line: string) => void): Writable {
  let pending = ''
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      pending += chunk.toString()
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) if (line.includes('"action":"llm.model"')) show(line)
      done()
    },
  })
}

function agentPolicy(agentId: string): string {
  return `version: 1
rules:
  - id: agent-uses-the-mesh
    description: the agent's sidecar forwards its mesh traffic (the MCP server's sidecar decides it)
    effect: allow
    subjects: ["${agentId}"]
    resources:
      - kind: http.route
        path: /**
  - id: agent-small-model
    description: the agent may use the small demo model, and no other
    effect: allow
    subjects: ["${agentId}"]
    resources:
      - kind: llm.model
        name: demo-small
`
}

function demoPolicy(agentId: string, td: string): string {
  return `version: 1
mode: enforce
rules:
  - id: agent-calls-tools
    description: the demo agent may list and call tools
    effect: allow
    subjects: ["${agentId}"]
    resources:
      - kind: http.route
        methods: [GET, POST]
        path: /tools/**
  - id: no-admin
    description: nobody reaches the admin routes through the mesh
    effect: deny
    subjects: [{ trustDomain: ${td} }]
    resources:
      - kind: http.route
        path: /admin/**
`
}
