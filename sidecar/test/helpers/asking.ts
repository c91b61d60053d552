/**
 * The parts the tests of server-to-client requests share: the agents' policies (any tool for both agents; only
 * AGENT lets a server sample through it), the SDK 1.x `ask` tool that samples the client and reports what came
 * back, and an SDK 1.x agent that answers sampling (and, if asked, roots) and records what it was asked.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import { CreateMessageRequestSchema, ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import type { Test } from 'tap'
import { AGENT, AGENT2 } from './mcp-mesh.ts'

/** The server's sidecar: both agents may call any tool. */
export const AGENTS_TOOLS_POLICY = `version: 1
rules:
  - id: agents-tools
    effect: allow
    subjects: ["${AGENT}", "${AGENT2}"]
    resources: [{ kind: mcp.tool, name: "*" }]
`

/** The agents' own sidecars: both may call the tools; only AGENT lets the server sample through it. */
export const AGENT_SAMPLING_POLICY = `version: 1
rules:
  - id: tools
    effect: allow
    subjects: ["${AGENT}", "${AGENT2}"]
    resources: [{ kind: mcp.tool, name: "*" }]
  - id: agent-sampling
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.client, name: sampling }]
`

/** The text of a tool result's first content block. */
export const toolText = (r: unknown) =>
  ((r as { content: Array<{ text: string }> }).content[0] as { text: string }).text

/** What a tool answers when its request of the client failed: the JSON-RPC code it got. */
export function refusedResult(err: unknown) {
  return {
    content: [{ type: 'text' as const, text: `refused: ${(err as { code?: number }).code}` }],
    isError: true,
  }
}

/** `ask`: samples the client ("say hi") and answers `sampled: <text>`, or `refused: <code>` when that failed. */
export function registerAskTool(server: McpServer, timeoutMs = 10_000): void {
  server.registerTool('ask', { description: 'asks the client to sample' }, async () => {
    try {
      const r = await server.server.createMessage(
        { messages: [{ role: 'user', content: { type: 'text', text: 'say hi' } }], maxTokens: 20 },
        { timeout: timeoutMs },
      )
      return {
        content: [{ type: 'text', text: `sampled: ${r.content.type === 'text' ? r.content.text : ''}` }],
      }
    } catch (err) {
      return refusedResult(err)
    }
  })
}

/**
 * An SDK 1.x agent over `transport` that answers sampling with `answer` (and lists one root when `roots`),
 * pushing each request's kind onto `asked`; closed when the test ends.
 */
export async function answeringAgent(
  t: Test,
  transport: Transport,
  asked: string[],
  { answer = 'hi there', roots = false }: { answer?: string; roots?: boolean } = {},
): Promise<Client> {
  const client = new Client(
    { name: 'svidecar-test-agent', version: '1.0.0' },
    { capabilities: roots ? { sampling: {}, roots: {} } : { sampling: {} } },
  )
  client.setRequestHandler(CreateMessageRequestSchema, async () => {
    asked.push('sampling')
    return { model: 'test-model', role: 'assistant', content: { type: 'text', text: answer } }
  })
  if (roots) {
    client.setRequestHandler(ListRootsRequestSchema, async () => {
      asked.push('roots')
      return { roots: [{ uri: 'file:///work', name: 'work' }] }
    })
  }
  await client.connect(transport)
  t.teardown(() => client.close())
  return client
}
