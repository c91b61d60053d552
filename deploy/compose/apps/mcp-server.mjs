// A small MCP server for the demo: Streamable HTTP at POST /mcp (JSON responses, no SSE), with one tool that
// says who called it, from the x-spiffe-id header its svidecar sets after verifying the caller. Only what the
// demo uses of the protocol (initialize, notifications, ping, tools/list, tools/call). Listens on $PORT (8080).
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'

const port = Number(process.env.PORT ?? 8080)
const host = process.env.HOST ?? '127.0.0.1'
const PROTOCOL_VERSION = '2025-06-18'
const TOOLS = [
  {
    name: 'whoami',
    description: 'Returns the SPIFFE ID the MCP server sidecar verified for the caller',
    inputSchema: { type: 'object', properties: {}, additionalProperties: false },
  },
]
const sessions = new Set()

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body)
  res.writeHead(status, {
    ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    'content-length': Buffer.byteLength(text),
    ...headers,
  })
  res.end(text)
}

const rpcError = (id, code, message) => ({ jsonrpc: '2.0', id, error: { code, message } })

function answer(message, caller) {
  const { id, method } = message
  switch (method) {
    case 'initialize':
      return {
        jsonrpc: '2.0',
        id,
        result: {
          protocolVersion: PROTOCOL_VERSION,
          capabilities: { tools: { listChanged: false } },
          serverInfo: { name: 'svidecar-demo-mcp', version: '0.1.0' },
        },
      }
    case 'ping':
      return { jsonrpc: '2.0', id, result: {} }
    case 'tools/list':
      return { jsonrpc: '2.0', id, result: { tools: TOOLS } }
    case 'tools/call':
      if (message.params?.name !== 'whoami')
        return rpcError(id, -32602, `unknown tool ${message.params?.name}`)
      return {
        jsonrpc: '2.0',
        id,
        result: { content: [{ type: 'text', text: `you are ${caller ?? 'unknown'}` }], isError: false },
      }
    default:
      return rpcError(id, -32601, `method ${method} not found`)
  }
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://mcp')
  if (url.pathname !== '/mcp') return send(res, 404, { error: 'not found' })
  if (req.method === 'DELETE') {
    sessions.delete(req.headers['mcp-session-id'])
    return send(res, 204)
  }
  // No server-initiated stream in this server.
  if (req.method !== 'POST') return send(res, 405, undefined, { allow: 'POST, DELETE' })
  const chunks = []
  for await (const chunk of req) chunks.push(chunk)
  let message
  try {
    message = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    return send(res, 400, rpcError(null, -32700, 'parse error'))
  }
  const caller = req.headers['x-spiffe-id']
  if (message.method === 'initialize') {
    const session = randomUUID()
    sessions.add(session)
    return send(res, 200, answer(message, caller), { 'mcp-session-id': session })
  }
  const session = req.headers['mcp-session-id']
  if (typeof session !== 'string' || !sessions.has(session))
    return send(res, 404, rpcError(message.id ?? null, -32001, 'unknown or missing Mcp-Session-Id'))
  // Notifications and responses get 202 and no body.
  if (message.id === undefined) return send(res, 202)
  return send(res, 200, answer(message, caller))
})

server.listen(port, host, () => {
  const address = server.address()
  process.stdout.write(`MCP server listening on ${address.address}:${address.port}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
