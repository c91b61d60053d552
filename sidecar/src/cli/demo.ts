/**
 * `svidecar demo`: the whole data plane on one machine with no SPIRE. A dev
 * Workload API (the real gRPC protocol on a unix socket) issues two
 * identities; an agent's sidecar sends traffic over mTLS to an MCP server's
 * sidecar, which hands it to a local app with the caller's verified SPIFFE
 * ID. The MCP server's sidecar enforces a small policy; the demo shows one
 * route it allows and one it denies, with the decisions, and its MCP lens
 * in front of a small MCP server: the tool list the agent is shown, an
 * allowed call and a denied call in each denial style (demo-mcp-calls.ts).
 * The agent's sidecar is also its LLM gateway: the agent calls a local
 * OpenAI-compatible model server with no key, the sidecar decides the model
 * by the agent's SPIFFE ID, injects the key only it holds and keeps the
 * agent's token budget (demo-llm.ts). Each step prints its audit lines. It
 * then prints each request, each rotation, and how to send your own.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { DevWorkloadApi } from '@svidecar/certs'
import { parseConfig } from '../config/index.ts'
import { startDemoApp } from '../dev/demo-app.ts'
import { startDemoModel } from '../dev/demo-model.ts'
import { on } from '../observe/events.ts'
import { createLogger } from '../observe/log.ts'
import { Sidecar } from '../sidecar.ts'
import { DemoAudit } from './demo-audit.ts'
import { agentSidecarConfig, mcpSidecarConfig } from './demo-configs.ts'
import { llmCalls } from './demo-llm.ts'
import { mcpCalls } from './demo-mcp-calls.ts'
import { UsageError } from './usage.ts'

const HELP = `Usage: svidecar demo [options]

Runs a dev SPIFFE Workload API (no SPIRE needed), an agent's sidecar and an
MCP server's sidecar with a local app behind it, and sends a request from the
agent side over mTLS every few seconds. The MCP server's sidecar enforces a
demo policy: the agent may call /tools/**, nobody may call /admin/**; the demo
sends one request of each and prints the decisions. Its MCP lens guards a
small MCP server: the agent sees only the tools it may use, and calls one it
may and three it may not (denied as hide, explain and forbid). The agent's
sidecar is also its LLM gateway to a local OpenAI-compatible model server:
the agent holds no key, may use demo-small and not demo-large, and has a
small daily token budget that a long answer runs out of mid-stream. Each
step prints its audit lines. SVIDs rotate at half their lifetime.
Stop with Ctrl-C.

Options:
  --ttl <seconds>       X.509-SVID lifetime; rotation comes at half of it (default 20)
  --rotations <n>       exit after n rotations during the repeated requests (default: run until stopped)
  --interval <seconds>  time between demo requests (default 2)
  --trust-domain <td>   trust domain (default example.org)
  -h, --help            show this help
`

// The demo's own sidecars log only problems; the demo narrates the rest.
// The agent's daily token budget: room for a short answer, not for the long one.
const DEMO_TOKENS_PER_DAY = 100
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
  // The MCP server's MCP decisions are shown per step; its route decisions come from the policy events below.
  const serverAudit = new DemoAudit((r) => typeof r.action === 'string' && r.action.startsWith('mcp.'))
  const server = await Sidecar.start(
    parseConfig(
      mcpSidecarConfig({ socket: api.endpoint, appUrl: app.url, agentId, policyFile }),
      'demo (MCP server side)',
      {},
    ),
    { logger: quiet, auditStdout: serverAudit.stream },
  )
  const inbound = server.addresses.inbound.mcp
  // Only the agent's model decisions and usage lines are shown; its route decisions would repeat per request.
  const agentAudit = new DemoAudit((r) => r.action === 'llm.model' || r.kind === 'llm.usage')
  const agent = await Sidecar.start(
    parseConfig(
      agentSidecarConfig({
        socket: api.endpoint,
        mcpPort: inbound?.port ?? 0,
        mcpId,
        modelUrl: model.url,
        keyFile,
        policyFile: agentPolicyFile,
        agentId,
        tokensPerDay: DEMO_TOKENS_PER_DAY,
      }),
      'demo (agent side)',
      {},
    ),
    { logger: quiet, auditStdout: agentAudit.stream },
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
  The MCP server, through both sidecars:      ${outbound}/mcp (Streamable HTTP; any MCP client)
  The policy it enforces:                     ${policyFile}
  Call the LLM gateway with no key:           curl ${llm}/v1/chat/completions -d '{"model":"demo-small","messages":[]}'
  or any OpenAI SDK with baseURL ${llm}/v1 (demo-large is denied)
  Metrics of the agent's sidecar:             curl http://${admin.host}:${admin.port}/metrics
  Metrics of the MCP server's sidecar:        curl http://${serverAdmin.host}:${serverAdmin.port}/metrics
  Point your own SPIFFE client at the dev Workload API:
    export SPIFFE_ENDPOINT_SOCKET=${api.endpoint}

  Below, each step's "audit:" lines are the sidecars' own audit lines, trimmed to their key fields.

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
  // The route decisions of the MCP server's sidecar, for the first allowed request and every denied one.
  let shownAllow = false
  const offDecision = on('policyDecision', (e) => {
    if (e.listener !== 'mcp' || e.action !== 'http.route' || (e.decision === 'allow' && shownAllow)) return
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
  await mcpCalls(`${outbound}/mcp`, serverAudit, log)
  await llmCalls(llm, agentAudit, log)
  log('mesh: the agent now calls the app every few seconds; watch the SVIDs rotate')
  // Rotations during the steps above do not count: the requests below are to meet the new certificates.
  const rotationsBefore = rotations
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
    if (rotations - rotationsBefore >= maxRotations) finish(0)
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
denyStyle: hide
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
  - id: agent-searches-docs
    description: the agent may search the docs (every other tool is denied; by default it is hidden)
    effect: allow
    subjects: ["${agentId}"]
    resources: [{ kind: mcp.tool, name: search_docs }]
  - id: no-deletes
    description: deleting is refused with a tool error the model can read
    effect: deny
    denyStyle: explain
    subjects: [{ trustDomain: ${td} }]
    resources: [{ kind: mcp.tool, name: delete_* }]
  - id: deploy-needs-approval
    description: deploying needs rights the agent does not have (HTTP 403, insufficient_scope)
    effect: deny
    denyStyle: forbid
    subjects: [{ trustDomain: ${td} }]
    resources: [{ kind: mcp.tool, name: deploy }]
`
}
