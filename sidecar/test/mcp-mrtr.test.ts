// Multi round-trip requests (2026-07-28): with the official SDK 2.x, a stateless server asks the agent for
// sampling or elicitation by answering tools/call with `input_required`, and the 2.x client fulfils the embedded
// requests through its own handlers and retries. The agent's sidecar screens every embedded request with the
// agent's policy (`mcp.client`) and its token budget, as it does a session-era server's own requests.

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { inputRequired, McpServer } from '@modelcontextprotocol/server'
import t, { type Test } from 'tap'
import { type LlmUsageEvent, on, type PolicyDecisionEvent } from '../src/observe/events.ts'
import { AGENT_SAMPLING_POLICY, AGENTS_TOOLS_POLICY, toolText as text } from './helpers/asking.ts'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { modernMcpServer } from './helpers/mcp-servers.ts'

const SERVER_POLICY = AGENTS_TOOLS_POLICY
// The agents' own policy: both may call the tools; only AGENT lets the server sample through it; nobody elicits.
const AGENT_POLICY = AGENT_SAMPLING_POLICY

interface Calls {
  /** Every tools/call the server ran, first rounds and retries alike, by tool name. */
  ran: string[]
}

/** A stateless SDK 2.x server: `ask` samples, `confirm` elicits, `both` asks for both at once. */
async function askingServer(
  t: Test,
  responseMode: 'json' | 'sse' = 'json',
): Promise<{ url: string; calls: Calls }> {
  const calls: Calls = { ran: [] }
  const sample = inputRequired.createMessage({
    messages: [{ role: 'user', content: { type: 'text', text: 'What is the capital of France?' } }],
    modelPreferences: { hints: [{ name: 'test-model' }] },
    maxTokens: 16,
  })
  const elicit = inputRequired.elicit({
    message: 'Deploy?',
    requestedSchema: { type: 'object', properties: { ok: { type: 'boolean' } } },
  })
  const factory = () => {
    const server = new McpServer({ name: 'asking', version: '1.0.0' })
    const answers = (ctx: unknown) =>
      (ctx as { mcpReq: { inputResponses?: Record<string, { content?: unknown }> } }).mcpReq.inputResponses
    const tool = (name: string, inputRequests: Record<string, ReturnType<typeof inputRequired.elicit>>) =>
      server.registerTool(name, { description: name }, (ctx) => {
        calls.ran.push(name)
        const got = answers(ctx)
        if (got === undefined) return inputRequired({ inputRequests, requestState: `state-${name}` })
        return { content: [{ type: 'text', text: `${name}: ${JSON.stringify(got)}` }] }
      })
    tool('ask', { q: sample })
    tool('confirm', { ok: elicit })
    tool('both', { q: sample, ok: elicit })
    return server
  }
  const { url } = await modernMcpServer(t, factory, { responseMode })
  return { url, calls }
}

/** A 2.x client that can sample and elicit, recording what its handlers were asked. */
async function agentClient(t: Test, url: string, asked: string[], reply = 'Paris'): Promise<Client> {
  const client = new Client(
    { name: 'agent', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: {} }, versionNegotiation: { mode: 'auto' } },
  )
  client.setRequestHandler('sampling/createMessage', async () => {
    asked.push('sampling')
    return { role: 'assistant', model: 'test-model', content: { type: 'text', text: reply } }
  })
  client.setRequestHandler('elicitation/create', async () => {
    asked.push('elicitation')
    return { action: 'accept', content: { ok: true } }
  })
  await client.connect(new StreamableHTTPClientTransport(new URL(url)))
  t.teardown(() => client.close())
  return client
}

async function refusal(call: Promise<unknown>): Promise<{ code?: unknown; message?: unknown }> {
  try {
    await call
  } catch (err) {
    return err as { code?: unknown; message?: unknown }
  }
  throw new Error('the call was not refused')
}

for (const mode of ['json', 'sse'] as const) {
  t.test(
    `input requests are screened by the agent sidecar with the agent policy (${mode} answers)`,
    async (t) => {
      const upstream = await askingServer(t, mode)
      const mesh = await startMcpMesh(t, {
        upstream: upstream.url,
        serverPolicy: SERVER_POLICY,
        agentPolicy: AGENT_POLICY,
      })
      const seen: PolicyDecisionEvent[] = []
      t.teardown(on('policyDecision', (e) => seen.push(e)))

      const asked: string[] = []
      const agent = await agentClient(t, mesh.agentUrl, asked)
      t.match(
        text(await agent.callTool({ name: 'ask', arguments: {} })),
        /^ask: .*Paris/,
        'an allowed sampling request reaches the agent, and its answer the server on the retry',
      )
      t.same(asked, ['sampling'])
      t.same(upstream.calls.ran, ['ask', 'ask'], 'the first round and the retry both reached the server')
      t.ok(
        seen.some((e) => e.action === 'mcp.client' && e.resource === 'sampling' && e.decision === 'allow'),
        'the allow is audited',
      )

      const denied = await refusal(agent.callTool({ name: 'confirm', arguments: {} }))
      t.equal(denied.code, 403, "the agent's call ends with the policy error")
      t.match(denied.message, /refuses elicitation\/create/)
      t.same(asked, ['sampling'], 'the agent never saw the denied elicitation')
      t.same(upstream.calls.ran, ['ask', 'ask', 'confirm'], 'nothing was retried')
      t.match(
        seen.find((e) => e.action === 'mcp.client' && e.resource === 'elicitation'),
        { decision: 'deny', subject: AGENT },
        'the denial is audited for the agent',
      )

      const mixed = await refusal(agent.callTool({ name: 'both', arguments: {} }))
      t.equal(mixed.code, 403, 'one refused input request refuses the whole result')
      t.same(asked, ['sampling'], 'the allowed request in it was not delivered either')

      const asked2: string[] = []
      const agent2 = await agentClient(t, mesh.agent2Url, asked2)
      const other = await refusal(agent2.callTool({ name: 'ask', arguments: {} }))
      t.equal(other.code, 403, 'another agent whose policy does not allow sampling is refused')
      t.same(asked2, [])
    },
  )
}

t.test('sampling asked through MRTR counts against the agent token budget', async (t) => {
  const upstream = await askingServer(t)
  const mesh = await startMcpMesh(t, {
    upstream: upstream.url,
    serverPolicy: SERVER_POLICY,
    agentPolicy: AGENT_POLICY,
    agentExtra: `budgets:
  limits:
    - name: agent-day
      subjects: ["${AGENT}"]
      tokensPerDay: 40`,
  })
  const usage: LlmUsageEvent[] = []
  t.teardown(on('llmUsage', (e) => usage.push(e)))
  const asked: string[] = []
  // An answer far longer than the budget: the first sampling fits its reservation, its settlement uses it up.
  const long = Array.from({ length: 80 }, (_, i) => `word${i}`).join(' ')
  const agent = await agentClient(t, mesh.agentUrl, asked, long)
  t.match(text(await agent.callTool({ name: 'ask', arguments: {} })), /word79/)
  const counted = await waitFor(() => usage.find((e) => e.api === 'mcp.sampling' && e.status === 200))
  t.equal(counted.subject, AGENT, 'the retry settled the sampling for the agent')
  t.equal(counted.estimated, true)
  t.ok(counted.outputTokens >= 40, 'the answer text is counted')
  t.same(counted.budget?.names, ['agent-day'])

  const spent = await refusal(agent.callTool({ name: 'ask', arguments: {} }))
  t.equal(spent.code, 403, 'with the budget used up the next sampling request is refused')
  t.match(spent.message, /budget agent-day/)
  t.same(asked, ['sampling'], 'the agent never saw the refused request')
  t.match(
    usage.find((e) => e.budgetRefusal !== undefined),
    {
      api: 'mcp.sampling',
      code: 'SVD_BUDGET_EXHAUSTED',
      budgetRefusal: { at: 'before', name: 'agent-day' },
    },
  )
})

async function waitFor<T>(find: () => T | undefined): Promise<T> {
  const deadline = Date.now() + 5000
  for (;;) {
    const v = find()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 10))
  }
}
