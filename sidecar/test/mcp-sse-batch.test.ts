// 2025-03-26 Streamable HTTP ("Sending Messages to the Server"): the SSE stream answering a POST carries one
// response per request, and "these responses MAY be batched", so one event's data may be a JSON-RPC array. List
// answers batched that way must be filtered like any other. No SDK server batches its SSE answers, so the
// upstream here is a few lines of spec-shaped HTTP; the requests are curl-shaped, through the agent's sidecar to
// the server's (MCP lens inbound).
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'

const POLICY = `version: 1
rules:
  - id: echo
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }, { kind: mcp.prompt, name: greet }]
`

const RESULTS: Record<string, object> = {
  'tools/list': { tools: ['echo', 'secret_tool'].map((name) => ({ name, inputSchema: { type: 'object' } })) },
  'prompts/list': { prompts: [{ name: 'greet' }, { name: 'admin_prompt' }] },
}

/** Answers every POST with one SSE event holding all its answers as a batch, then a progress-free end. */
async function batchingServer(t: Test): Promise<string> {
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
      const messages = (Array.isArray(body) ? body : [body]) as Array<{ id?: number; method: string }>
      const answers = messages
        .filter((m) => m.id !== undefined)
        .map((m) => ({ jsonrpc: '2.0', id: m.id, result: RESULTS[m.method] ?? {} }))
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.end(`id: e1\nevent: message\ndata: ${JSON.stringify(answers)}\n\n`)
    })
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  t.teardown(() => {
    http.closeAllConnections()
    http.close()
  })
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`
}

async function messagesOf(res: Response): Promise<{ ids: string[]; messages: unknown[] }> {
  const text = await res.text()
  const ids: string[] = []
  const messages: unknown[] = []
  for (const block of text.split('\n\n')) {
    for (const line of block.split('\n')) {
      if (line.startsWith('id:')) ids.push(line.slice(3).trim())
      if (line.startsWith('data:')) {
        const doc = JSON.parse(line.slice(5)) as unknown
        messages.push(...(Array.isArray(doc) ? doc : [doc]))
      }
    }
  }
  return { ids, messages }
}

t.test('list answers batched in one SSE event are filtered (2025-03-26)', async (t) => {
  const upstream = await batchingServer(t)
  const mesh = await startMcpMesh(t, { upstream, serverPolicy: POLICY })
  const post = (body: unknown) =>
    fetch(mesh.agentUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-03-26',
      },
      body: JSON.stringify(body),
    })

  const both = await messagesOf(
    await post([
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', id: 2, method: 'prompts/list' },
    ]),
  )
  t.match(both.messages, [
    { id: 1, result: { tools: [{ name: 'echo' }] } },
    { id: 2, result: { prompts: [{ name: 'greet' }] } },
  ])
  t.equal(both.messages.length, 2)
  t.same(
    (both.messages[0] as { result: { tools: unknown[] } }).result.tools.length,
    1,
    'secret_tool is left out',
  )
  t.same(
    (both.messages[1] as { result: { prompts: unknown[] } }).result.prompts.length,
    1,
    'admin_prompt is left out',
  )
  t.same(both.ids, ['e1'], 'the resumption point is kept, once, after the batch')

  const one = await messagesOf(await post({ jsonrpc: '2.0', id: 3, method: 'tools/list' }))
  t.same(
    one.messages,
    [{ jsonrpc: '2.0', id: 3, result: { tools: [{ name: 'echo', inputSchema: { type: 'object' } }] } }],
    'a batch of one answer is filtered too',
  )
})
