// An SSE event over the MCP lens's cap cannot be checked, so the stream carrying it ends there: the list request
// gets a JSON-RPC error, the client's response ends (a client is not left waiting on a stream that will never
// send it anything again), and the upstream request is closed, whether the event came in one piece or many. The
// upstream is a few lines of spec-shaped HTTP that keeps its stream open after the big event, as a server with
// more to say would.
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'

const POLICY = `version: 1
rules:
  - id: echo
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }]
`
const tools = Array.from({ length: 400 }, (_, i) => ({ name: `tool_${i}`, description: 'x'.repeat(64) }))
const BIG = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools } })}\n\n`

async function case_(t: Test, pieces: number): Promise<void> {
  let upstreamClosed = false
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    req.on('end', async () => {
      res.on('close', () => {
        upstreamClosed = true
      })
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(': primed\n\n')
      const size = Math.ceil(BIG.length / pieces)
      for (let at = 0; at < BIG.length && !res.destroyed; at += size) {
        res.write(BIG.slice(at, at + size))
        if (pieces > 1) await sleep(50)
      }
      // Never ends on its own: only the sidecar closing the request ends it.
    })
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  t.teardown(() => {
    http.closeAllConnections()
    http.close()
  })
  const mesh = await startMcpMesh(t, {
    upstream: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    serverPolicy: POLICY,
    serverMcp: '{ paths: ["/mcp"], maxMessageBytes: 4096 }',
  })
  const res = await fetch(mesh.agentUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-03-26',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    signal: AbortSignal.timeout(20_000),
  })
  t.equal(res.status, 200)
  // Resolves only when the response ends: the upstream never ends it.
  const text = await res.text()
  t.match(text, /"id":1,"error":\{"code":-32603/, 'the list request gets an error')
  t.notMatch(text, /tool_1/, 'nothing of the oversized event is passed')
  await waitFor(() => upstreamClosed, 'the upstream request closed')
}

t.test('an event over the cap in one piece ends the stream and closes the upstream request', (t) =>
  case_(t, 1),
)
t.test('an event over the cap in many pieces ends the stream and closes the upstream request', (t) =>
  case_(t, 8),
)
