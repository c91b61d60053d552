import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import {
  type JSONRPCMessage,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { mcpServer, serveMcp, TEMPLATES, TOOLS } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: echo-only
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }, { kind: mcp.resource, uri: "file:///public/**" }]
`

/**
 * An event store like the SDK's example one (`InMemoryEventStore`), without its two races, so the test is
 * about the sidecar:
 * - The example's event ids end in the millisecond and a random suffix, and it replays in the ids' sort order, so
 *   an answer stored in the same millisecond as the priming event sorted before it half the time and was never
 *   replayed. Here ids end in a sequence number.
 * - The answer is stored just after the handler closed the stream, so a client resuming at once could arrive
 *   first and be replayed nothing. Here a resume waits (up to two seconds) for the stream's next event.
 */
function orderedEventStore(): EventStore {
  const events: Array<{ id: string; streamId: string; message: JSONRPCMessage }> = []
  let seq = 0
  return {
    async storeEvent(streamId, message) {
      const id = `${streamId}_${String(++seq).padStart(12, '0')}`
      events.push({ id, streamId, message })
      return id
    },
    async replayEventsAfter(lastEventId, { send }) {
      const at = events.findIndex((e) => e.id === lastEventId)
      if (at === -1) return ''
      const streamId = (events[at] as { streamId: string }).streamId
      const later = () => events.slice(at + 1).some((e) => e.streamId === streamId)
      for (let i = 0; i < 200 && !later(); i++) await new Promise((r) => setTimeout(r, 10))
      for (const e of events.slice(at + 1)) if (e.streamId === streamId) await send(e.id, e.message)
      return streamId
    },
  }
}

/**
 * An SDK 1.x server whose list handlers close their request's SSE stream before answering, as a server that
 * moves a client to polling does: the answer is stored and replayed when the client resumes.
 */
async function pollingServer(t: Test): Promise<{ url: string; resumes: string[] }> {
  const resumes: string[] = []
  const url = await serveMcp(t, {
    transport: () => ({ eventStore: orderedEventStore(), retryInterval: 20 }),
    onRequest: (req) => {
      const last = req.headers['last-event-id']
      if (req.method === 'GET' && typeof last === 'string') resumes.push(last)
    },
    server: () => {
      const server = mcpServer()
      server.setRequestHandler(ListToolsRequestSchema, (_req, extra) => {
        extra.closeSSEStream?.()
        return {
          tools: TOOLS.map((name) => ({ name, inputSchema: { type: 'object' as const } })),
        }
      })
      server.setRequestHandler(ListResourceTemplatesRequestSchema, (_req, extra) => {
        extra.closeSSEStream?.()
        return { resourceTemplates: TEMPLATES.map((uriTemplate) => ({ uriTemplate, name: uriTemplate })) }
      })
      return server
    },
  })
  return { url, resumes }
}

t.test('a list answer replayed on a resumed GET stream (Last-Event-ID) is filtered', async (t) => {
  const upstream = await pollingServer(t)
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const client = new Client({ name: 'polling-agent', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(mesh.agentUrl), {
    reconnectionOptions: {
      initialReconnectionDelay: 20,
      maxReconnectionDelay: 200,
      reconnectionDelayGrowFactor: 1.5,
      maxRetries: 10,
    },
  })
  await client.connect(transport)
  t.teardown(() => client.close())

  const tools = await client.listTools()
  t.ok(upstream.resumes.length >= 1, 'the answer came on a resumed GET stream')
  t.same(
    tools.tools.map((x) => x.name),
    ['echo'],
    'only the allowed tool',
  )
  const templates = await client.listResourceTemplates()
  t.same(
    templates.resourceTemplates.map((x) => x.uriTemplate),
    ['file:///public/{name}'],
  )
  t.ok(upstream.resumes.length >= 2, 'both answers were replayed')
  // Once answered, nothing is left for a later stream to filter: a plain call still works.
  t.match(await client.callTool({ name: 'echo', arguments: { text: 'after' } }), {
    content: [{ type: 'text', text: 'echo:after' }],
  })
})

/** Reads SSE events from a response until `done` says so (or the stream ends); returns their parsed data. */
async function readEvents(
  res: Response,
  done: (events: Array<{ id?: string; data: string }>) => boolean,
): Promise<Array<{ id?: string; data: string }>> {
  const events: Array<{ id?: string; data: string }> = []
  const decoder = new TextDecoder()
  let buffer = ''
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  try {
    while (!done(events)) {
      const { value, done: end } = await reader.read()
      if (end) break
      buffer += decoder.decode(value, { stream: true })
      let at = buffer.indexOf('\n\n')
      while (at !== -1) {
        const block = buffer.slice(0, at)
        buffer = buffer.slice(at + 2)
        let id: string | undefined
        const data: string[] = []
        for (const line of block.split('\n')) {
          if (line.startsWith('id:')) id = line.slice(3).trim()
          else if (line.startsWith('data:')) data.push(line.slice(5).trimStart())
        }
        events.push({ ...(id === undefined ? {} : { id }), data: data.join('\n') })
        at = buffer.indexOf('\n\n')
      }
    }
  } finally {
    await reader.cancel().catch(() => {})
  }
  return events
}

t.test('a client resuming the same stream again and again never sees the unfiltered answer', async (t) => {
  const upstream = await pollingServer(t)
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-11-25',
  }
  const init = await fetch(mesh.agentUrl, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  })
  const session = init.headers.get('mcp-session-id') as string
  t.type(session, 'string')
  await readEvents(init, (events) => events.some((e) => e.data.includes('"result"')))
  const withSession = { ...headers, 'mcp-session-id': session }

  const list = await fetch(mesh.agentUrl, {
    method: 'POST',
    headers: withSession,
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  })
  t.equal(list.status, 200)
  const cut = await readEvents(list, () => false)
  const priming = cut.find((e) => e.id !== undefined)?.id
  t.type(priming, 'string', 'the server sent a priming event, then closed the stream')
  t.notOk(
    cut.some((e) => e.data.includes('"tools"')),
    'no answer on the POST stream',
  )

  for (const round of [1, 2]) {
    const control = new AbortController()
    const resumed = await fetch(mesh.agentUrl, {
      headers: { ...withSession, accept: 'text/event-stream', 'last-event-id': priming as string },
      signal: control.signal,
    })
    t.equal(resumed.status, 200, `resume ${round}`)
    const events = await readEvents(resumed, (es) => es.some((e) => e.data.includes('"tools"')))
    control.abort()
    const answer = events.find((e) => e.data.includes('"tools"'))
    t.ok(answer, `resume ${round}: the answer was replayed`)
    const names = (
      JSON.parse(answer?.data ?? '{}') as { result?: { tools?: Array<{ name: string }> } }
    ).result?.tools?.map((x) => x.name)
    t.same(names, ['echo'], `resume ${round}: filtered`)
  }
})
