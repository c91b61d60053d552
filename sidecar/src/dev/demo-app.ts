/**
 * The demo's local app: answers every request with what it saw, including
 * the SPIFFE ID its sidecar vouched for, so the demo can show who called.
 * Its `/mcp` path is the demo's MCP server (dev/demo-mcp.ts).
 */
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { DEMO_MCP_PATH, handleMcp } from './demo-mcp.ts'

export async function startDemoApp(peerHeader: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const caller = req.headers[peerHeader]
      if ((req.url ?? '').split('?')[0] === DEMO_MCP_PATH)
        return handleMcp(req, Buffer.concat(chunks), typeof caller === 'string' ? caller : '', res)
      const body = JSON.stringify({
        app: 'demo MCP server',
        method: req.method,
        path: req.url,
        caller: caller ?? null,
        bytes: Buffer.concat(chunks).length,
      })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}
