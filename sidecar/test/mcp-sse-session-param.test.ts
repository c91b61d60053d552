// HTTP+SSE (2024-11-05): the endpoint URI names the session in its query, `sessionId` in the TypeScript SDK and
// `session_id` in the Python SDK (mcp/server/sse.py). Both spellings are bound to the SPIFFE ID whose stream
// announced them, and a query naming a session more than once is refused: servers differ on which of several
// values they read (Starlette's QueryParams.get takes the last), so checking one and forwarding the others would
// let a workload post into another's session. The servers are the SDK 1.x SSEServerTransport; for the Python
// spelling its endpoint event is respelled and the POST handler reads the last value, as Starlette does.
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js'
import t, { type Test } from 'tap'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { AGENT, AGENT2, startMcpMesh } from './helpers/mcp-mesh.ts'
import { mcpServer } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: echo
    effect: allow
    subjects: ["${AGENT}", "${AGENT2}"]
    resources: [{ kind: mcp.tool, name: echo }]
`

/** An HTTP+SSE server on /sse and /messages whose session parameter is `param`; the POSTs that reached it. */
async function sseServer(
  t: Test,
  param: 'sessionId' | 'session_id',
): Promise<{ url: string; posts: string[] }> {
  const transports = new Map<string, SSEServerTransport>()
  const posts: string[] = []
  const http = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://server.invalid')
      if (req.method === 'GET' && url.pathname === '/sse') {
        const out: ServerResponse =
          param === 'sessionId'
            ? res
            : new Proxy(res, {
                get(target, key) {
                  if (key !== 'write') return Reflect.get(target, key, target)
                  return (chunk: string, ...rest: never[]) =>
                    target.write(String(chunk).replace('?sessionId=', '?session_id='), ...rest)
                },
              })
        const transport = new SSEServerTransport('/messages', out)
        transports.set(transport.sessionId, transport)
        await mcpServer().connect(transport)
        return
      }
      if (req.method === 'POST' && url.pathname === '/messages') {
        posts.push(req.url ?? '')
        // The last value, as Starlette's QueryParams.get reads it.
        const transport = transports.get(url.searchParams.getAll(param).at(-1) ?? '')
        if (transport === undefined) {
          res.writeHead(404).end('no such session')
          return
        }
        await transport.handlePostMessage(req, res)
        return
      }
      res.writeHead(404).end()
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end()
    })
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  t.teardown(() => {
    http.closeAllConnections()
    http.close()
  })
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, posts }
}

async function connect(t: Test, url: string): Promise<{ client: Client; sessionId: string }> {
  const transport = new SSEClientTransport(new URL(url))
  const client = new Client({ name: 'agent', version: '1.0.0' })
  await client.connect(transport)
  t.teardown(() => client.close())
  const endpoint = (transport as unknown as { _endpoint: URL })._endpoint
  const sessionId = endpoint.searchParams.get('sessionId') ?? endpoint.searchParams.get('session_id')
  return { client, sessionId: sessionId as string }
}

function post(agentUrl: string, query: string): Promise<Response> {
  const u = new URL(agentUrl)
  u.pathname = '/messages'
  u.search = query
  return fetch(u, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 9,
      method: 'tools/call',
      params: { name: 'echo', arguments: {} },
    }),
  })
}

for (const param of ['sessionId', 'session_id'] as const) {
  t.test(
    `HTTP+SSE with ?${param}=: a session named twice is refused before it reaches the server`,
    async (t) => {
      const upstream = await sseServer(t, param)
      const mesh = await startMcpMesh(t, {
        upstream: upstream.url,
        serverPolicy: POLICY,
        mcpPath: '/sse',
        serverMcp: '{ paths: [/sse, /messages] }',
      })
      const victim = await connect(t, mesh.agentUrl)
      const mine = await connect(t, mesh.agent2Url)
      t.same(
        (await mine.client.listTools()).tools.map((x) => x.name),
        ['echo'],
        'the SDK works over it',
      )
      const before = upstream.posts.length

      for (const query of [
        `?${param}=${mine.sessionId}&${param}=${victim.sessionId}`,
        `?sessionId=${mine.sessionId}&session_id=${victim.sessionId}`,
        `?${param}=${mine.sessionId}&%73${param.slice(1)}=${victim.sessionId}`,
      ]) {
        const res = await post(mesh.agent2Url, query)
        t.equal(res.status, 400, `${query}: refused`)
        t.equal(res.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_INVALID', query)
        t.match(await res.json(), { error: { code: -32600, message: /more than once/ } }, query)
      }
      t.equal(upstream.posts.length, before, 'none of them reached the server')
    },
  )

  t.test(
    `HTTP+SSE with ?${param}=: the session is bound to the SPIFFE ID whose stream named it`,
    async (t) => {
      const upstream = await sseServer(t, param)
      const mesh = await startMcpMesh(t, {
        upstream: upstream.url,
        serverPolicy: POLICY,
        mcpPath: '/sse',
        serverMcp: '{ paths: [/sse, /messages] }',
      })
      const victim = await connect(t, mesh.agentUrl)
      await victim.client.ping()
      const before = upstream.posts.length
      const takeover = await post(mesh.agent2Url, `?${param}=${victim.sessionId}`)
      t.equal(takeover.status, 403)
      t.equal(takeover.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_SESSION_FOREIGN')
      await takeover.body?.cancel()
      const unknown = await post(mesh.agent2Url, `?${param}=never-issued`)
      t.equal(unknown.status, 404)
      await unknown.body?.cancel()
      t.equal(upstream.posts.length, before, 'nothing reached the server')
      t.match(await victim.client.callTool({ name: 'echo', arguments: { text: 'mine' } }), {
        content: [{ text: 'echo:mine' }],
      })
    },
  )
}

t.test('HTTP+SSE: the binding ends when the client closes its stream', async (t) => {
  const upstream = await sseServer(t, 'sessionId')
  const mesh = await startMcpMesh(t, {
    upstream: upstream.url,
    serverPolicy: POLICY,
    mcpPath: '/sse',
    serverMcp: '{ paths: [/sse, /messages] }',
  })
  const { client, sessionId } = await connect(t, mesh.agentUrl)
  await client.ping()
  // SSE clients end a session by dropping the stream (the SDK's SSEClientTransport aborts its GET).
  await client.close()
  let last: { status: number; code: string | null } | undefined
  await waitFor(
    async () => {
      const res = await post(mesh.agentUrl, `?sessionId=${sessionId}`)
      await res.body?.cancel()
      last = { status: res.status, code: res.headers.get('x-svidecar-upstream-error') }
      return last.code === 'SVD_MCP_SESSION_UNKNOWN'
    },
    'the sidecar to forget the closed session',
    10_000,
    50,
  ).catch(() => t.fail(`the closed session is still bound: ${JSON.stringify(last)}`))
  t.equal(last?.status, 404, 'a POST into it is answered 404 by the sidecar: initialize again')
})
