/**
 * The demo's MCP server: a minimal one on purpose, JSON-RPC 2.0 over the
 * Streamable HTTP transport (protocol 2025-11-25 and the two before it),
 * answering each POST with one JSON body. It keeps no sessions (a server
 * may; it then issues no `Mcp-Session-Id`) and offers no server stream (a
 * GET is 405, as the transport allows). Four tools, named so the demo
 * policy allows one and denies the others in each denial style; a call
 * answers with the SPIFFE ID its sidecar vouched for.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'

export const DEMO_MCP_PATH = '/mcp'
const VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26']

const TOOLS: { name: string; description: string; run: (args: Record<string, unknown>) => string }[] = [
  {
    name: 'search_docs',
    description: 'Search the team documentation',
    run: (args) => `3 documents mention "${String(args.query ?? '')}"`,
  },
  { name: 'delete_repo', description: 'Delete a repository', run: (args) => `deleted ${String(args.repo)}` },
  {
    name: 'deploy',
    description: 'Deploy a service to production',
    run: (args) => `deployed ${String(args.service)}`,
  },
  { name: 'read_secrets', description: 'Read the vault', run: () => 'the vault is open' },
]

interface Request {
  jsonrpc?: unknown
  id?: unknown
  method?: unknown
  params?: { name?: unknown; arguments?: unknown; protocolVersion?: unknown }
}

/** Answers one HTTP request on the MCP path; `caller` is the SPIFFE ID the sidecar put in its header. */
export function handleMcp(req: IncomingMessage, body: Buffer, caller: string, res: ServerResponse): void {
  if (req.method !== 'POST') {
    res.writeHead(405, { allow: 'POST' }).end()
    return
  }
  const { status, doc } = answer(body, caller)
  if (doc === undefined) {
    res.writeHead(status).end()
    return
  }
  const text = JSON.stringify(doc)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** The HTTP status and JSON-RPC document that answer one POSTed message (no document: 202 Accepted). */
function answer(body: Buffer, caller: string): { status: number; doc?: unknown } {
  let msg: Request
  try {
    msg = JSON.parse(body.toString('utf8')) as Request
  } catch {
    return { status: 400, doc: { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } } }
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg) || msg.jsonrpc !== '2.0')
    return {
      status: 400,
      doc: { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request' } },
    }
  // A notification (or an answer to a request of ours: we send none) is accepted with no body.
  if (msg.id === undefined) return { status: 202 }
  const id = msg.id
  const result = (r: unknown) => ({ status: 200, doc: { jsonrpc: '2.0', id, result: r } })
  const error = (code: number, message: string) => ({
    status: 200,
    doc: { jsonrpc: '2.0', id, error: { code, message } },
  })
  switch (msg.method) {
    case 'initialize': {
      const asked = msg.params?.protocolVersion
      return result({
        protocolVersion: typeof asked === 'string' && VERSIONS.includes(asked) ? asked : VERSIONS[0],
        capabilities: { tools: { listChanged: false } },
        serverInfo: { name: 'svidecar-demo-mcp', version: '1.0.0' },
      })
    }
    case 'ping':
      return result({})
    case 'tools/list':
      return result({
        tools: TOOLS.map((t) => ({
          name: t.name,
          description: t.description,
          inputSchema: { type: 'object', additionalProperties: true },
        })),
      })
    case 'tools/call': {
      const tool = TOOLS.find((t) => t.name === msg.params?.name)
      if (tool === undefined) return error(-32602, `Unknown tool: ${String(msg.params?.name)}`)
      const args = msg.params?.arguments
      const text = tool.run(
        args !== null && typeof args === 'object' ? (args as Record<string, unknown>) : {},
      )
      return result({ content: [{ type: 'text', text: `${text} (called by ${caller})` }], isError: false })
    }
    default:
      return error(-32601, `Method not found: ${String(msg.method)}`)
  }
}
