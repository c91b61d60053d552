// Requests an MCP server makes of the agent (sampling, roots) pass the agent's own sidecar policy: the official
// SDK 1.x server calls createMessage / listRoots inside a tool call (the request travels in the POST's SSE
// answer), the SDK client answers with its handlers. Allowed: the agent's answer reaches the server. Denied:
// the agent never sees the request, and the server's call fails with the error the agent's sidecar sent.
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js'
import { CreateMessageResultSchema } from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { listFilterWrapper } from '../src/lens/mcp/response.ts'
import { type LlmUsageEvent, on, type PolicyDecisionEvent } from '../src/observe/events.ts'
import {
  AGENT_SAMPLING_POLICY,
  AGENTS_TOOLS_POLICY,
  answeringAgent,
  refusedResult,
  registerAskTool,
  toolText as text,
} from './helpers/asking.ts'
import { AGENT, AGENT2, startMcpMesh } from './helpers/mcp-mesh.ts'
import { sessionMcpServer } from './helpers/mcp-servers.ts'

const SERVER_POLICY = AGENTS_TOOLS_POLICY
// Both agents may call the tools; only AGENT lets the server sample through it, nobody lists roots.
const AGENT_POLICY = AGENT_SAMPLING_POLICY

/** An SDK McpServer whose tools ask the client: `ask` samples, `roots` lists the client's roots. */
async function startServer(t: Test): Promise<string> {
  const build = () => {
    const server = new McpServer({ name: 'asking-server', version: '1.0.0' })
    registerAskTool(server)
    // Sent as related to the call: it travels inside the tools/call POST's SSE answer, not on the GET stream.
    server.registerTool('ask_related', { description: 'samples on the call stream' }, async (extra) => {
      try {
        const r = await extra.sendRequest(
          {
            method: 'sampling/createMessage',
            params: {
              messages: [{ role: 'user', content: { type: 'text', text: 'say hi' } }],
              maxTokens: 20,
            },
          },
          CreateMessageResultSchema,
          { timeout: 10_000 },
        )
        return {
          content: [{ type: 'text', text: `sampled: ${r.content.type === 'text' ? r.content.text : ''}` }],
        }
      } catch (err) {
        return refusedResult(err)
      }
    })
    server.registerTool('roots', { description: 'lists the client roots' }, async () => {
      try {
        const r = await server.server.listRoots(undefined, { timeout: 10_000 })
        return { content: [{ type: 'text', text: `roots: ${r.roots.length}` }] }
      } catch (err) {
        return refusedResult(err)
      }
    })
    return server
  }
  return (await sessionMcpServer(t, build)).url
}

function connect(t: Test, url: string, asked: string[], answer?: string): Promise<Client> {
  return answeringAgent(t, new StreamableHTTPClientTransport(new URL(url)), asked, {
    roots: true,
    ...(answer === undefined ? {} : { answer }),
  })
}

t.test('server-to-client requests are decided by the agent sidecar for the agent', async (t) => {
  const upstream = await startServer(t)
  const mesh = await startMcpMesh(t, { upstream, serverPolicy: SERVER_POLICY, agentPolicy: AGENT_POLICY })
  const seen: PolicyDecisionEvent[] = []
  t.teardown(on('policyDecision', (e) => seen.push(e)))

  const asked: string[] = []
  const agent = await connect(t, mesh.agentUrl, asked)
  const sampled = await agent.callTool({ name: 'ask', arguments: {} })
  t.equal(
    text(sampled),
    'sampled: hi there',
    'an allowed sampling request reaches the agent and its answer the server',
  )
  t.same(asked, ['sampling'])
  t.ok(
    seen.some(
      (e) =>
        e.action === 'mcp.client' &&
        e.resource === 'sampling' &&
        e.decision === 'allow' &&
        e.subject === AGENT,
    ),
    'the allow is audited for the agent',
  )

  t.equal(
    text(await agent.callTool({ name: 'ask_related', arguments: {} })),
    'sampled: hi there',
    "a sampling request inside the call's own SSE answer is delivered too",
  )
  t.same(asked, ['sampling', 'sampling'])
  const roots = await agent.callTool({ name: 'roots', arguments: {} })
  t.equal(text(roots), 'refused: 403', 'a denied roots/list is answered for the agent with the policy error')
  t.same(asked, ['sampling', 'sampling'], 'the agent never saw the denied request')

  const asked2: string[] = []
  const agent2 = await connect(t, mesh.agent2Url, asked2)
  const refused = await agent2.callTool({ name: 'ask', arguments: {} })
  t.equal(text(refused), 'refused: 403', 'sampling denied for another agent fails on the server at once')
  t.same(asked2, [], 'agent2 never saw the sampling request')
  const denial = seen.find((e) => e.action === 'mcp.client' && e.subject === AGENT2)
  t.equal(denial?.decision, 'deny')
  t.equal(denial?.resource, 'sampling')
  t.equal(
    text(await agent2.callTool({ name: 'ask_related', arguments: {} })),
    'refused: 403',
    'refused inside the call stream as well',
  )
  t.same(asked2, [])
  // The agent's session still works after a refusal.
  t.equal(text(await agent2.callTool({ name: 'roots', arguments: {} })), 'refused: 403')
})

t.test('sampling counts against the agent token budget and is refused once it is used up', async (t) => {
  const upstream = await startServer(t)
  const mesh = await startMcpMesh(t, {
    upstream,
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
  // An answer far longer than the budget: the first sampling fits the reservation, its settlement uses it up.
  const long = Array.from({ length: 80 }, (_, i) => `word${i}`).join(' ')
  const agent = await connect(t, mesh.agentUrl, asked, long)
  t.equal(text(await agent.callTool({ name: 'ask', arguments: {} })), `sampled: ${long}`)
  const line = usage.find((e) => e.api === 'mcp.sampling')
  t.equal(line?.subject, AGENT, 'the sampling is counted for the agent')
  t.equal(line?.estimated, true, 'marked estimated: sampling results carry no token counts')
  t.equal(line?.model, 'test-model')
  t.ok((line?.outputTokens ?? 0) >= 40, 'the answer text is counted')
  t.ok((line?.inputTokens ?? 0) > 0, 'the prompt text is counted')
  t.same(line?.budget?.names, ['agent-day'])

  t.equal(
    text(await agent.callTool({ name: 'ask', arguments: {} })),
    'refused: 403',
    'with the budget used up the next sampling request is refused to the server',
  )
  t.same(asked, ['sampling'], 'the agent never saw the refused request')
  t.match(
    usage.find((e) => e.budgetRefusal !== undefined),
    {
      api: 'mcp.sampling',
      subject: AGENT,
      code: 'SVD_BUDGET_EXHAUSTED',
      budgetRefusal: { at: 'before', name: 'agent-day' },
    },
    'the refusal is a usage line naming the budget',
  )
})

/** The same asking server over the deprecated HTTP+SSE transport (2024-11-05): GET /sse, POST /message. */
async function startSseServer(t: Test): Promise<string> {
  const transports = new Map<string, SSEServerTransport>()
  const http = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (req.method === 'GET' && url.pathname === '/sse') {
      const transport = new SSEServerTransport('/message', res)
      transports.set(transport.sessionId, transport)
      const server = new McpServer({ name: 'asking-sse-server', version: '1.0.0' })
      registerAskTool(server)
      await server.connect(transport)
      return
    }
    const transport = transports.get(url.searchParams.get('sessionId') ?? '')
    if (req.method !== 'POST' || transport === undefined) {
      res.writeHead(404).end()
      return
    }
    await transport.handlePostMessage(req, res)
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  t.teardown(async () => {
    for (const tr of transports.values()) await tr.close()
    http.closeAllConnections()
    http.close()
  })
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`
}

t.test('over HTTP+SSE the refusal is POSTed to the session endpoint the stream named', async (t) => {
  const upstream = await startSseServer(t)
  const mesh = await startMcpMesh(t, {
    upstream,
    serverPolicy: SERVER_POLICY,
    agentPolicy: AGENT_POLICY,
    mcpPath: '/sse',
    serverMcp: '{ paths: [/sse, /message] }',
    agentMcp: '{ paths: [/sse, /message] }',
  })
  const sse = (url: string, asked: string[]) =>
    answeringAgent(t, new SSEClientTransport(new URL(url)), asked, { answer: 'hi over sse' })
  const asked: string[] = []
  const agent = await sse(mesh.agentUrl, asked)
  t.equal(text(await agent.callTool({ name: 'ask', arguments: {} })), 'sampled: hi over sse')
  const asked2: string[] = []
  const agent2 = await sse(mesh.agent2Url, asked2)
  t.equal(
    text(await agent2.callTool({ name: 'ask', arguments: {} })),
    'refused: 403',
    'the server got the refusal on its message endpoint at once',
  )
  t.same(asked, ['sampling'])
  t.same(asked2, [])
})

t.test('the stream reader finds server requests however they are spelled', async (t) => {
  const asked: string[] = []
  const w = listFilterWrapper(
    { status: 200, headers: { 'content-type': 'text/event-stream' } },
    new Map(),
    () => true,
    1 << 20,
    {
      clientRequest(r) {
        asked.push(`${r.name}:${String(r.id)}`)
        return r.id === 'ok'
      },
    },
  )
  const feed = (s: string) => String(w?.data?.(Buffer.from(s)) ?? 'no wrapper')
  // JSON lets a string escape any character: the client reads these as the methods they spell.
  t.equal(
    feed('id: 4\ndata: {"jsonrpc":"2.0","id":1,"method":"sampling\\/createMessage","params":{}}\n\n'),
    'id: 4\n\n',
    'an escaped method is still decided; the refused event leaves only its id',
  )
  t.equal(feed('data: {"jsonrpc":"2.0","id":2,"m\\u0065thod":"roots/list"}\n\n'), '', 'an escaped key too')
  t.equal(
    feed(
      'data: {"jsonrpc":"2.0","id":3,"method":"elicitation/create","params":{"message":"\\"result\\""}}\n\n',
    ),
    '',
    'a request that mentions "result" is still a request',
  )
  const allowed = 'data: {"jsonrpc":"2.0","id":"ok","method":"sampling/createMessage","params":{}}\n\n'
  t.equal(feed(allowed), allowed, 'an allowed request is delivered as it came')
  const note = 'data: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"a\\\\b"}}\n\n'
  t.equal(feed(note), note, 'other messages pass untouched')
  t.same(asked, ['sampling:1', 'roots:2', 'elicitation:3', 'sampling:ok'])
})
