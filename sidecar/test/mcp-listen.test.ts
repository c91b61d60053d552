// `subscriptions/listen` (2026-07-28): each resource a client subscribes to is decided as reading it would be,
// with the official SDK 2.x client and server through both sidecars; and on the stream a resource update the
// subject may not read is dropped even when a server sends it unasked (a hand-written server, since the SDK's own
// listen router never does).

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { McpServer } from '@modelcontextprotocol/server'
import t from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { modernMcpServer, serveHttp } from './helpers/mcp-servers.ts'

const POLICY = `version: 1
rules:
  - id: public-memos
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.resource, uri: "memo://public/**" }]
`

const VERSION = '2026-07-28'

/** A raw stateless-era `subscriptions/listen` POST through the agent's sidecar. */
function postListen(url: string, notifications: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': VERSION,
      'mcp-method': 'subscriptions/listen',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'subscriptions/listen',
      params: { _meta: { 'io.modelcontextprotocol/protocolVersion': VERSION }, notifications },
    }),
  })
}

t.test('each subscribed resource is decided; an allowed listen gets its updates', async (t) => {
  const factory = () => {
    const server = new McpServer(
      { name: 'memos', version: '1.0.0' },
      { capabilities: { resources: { subscribe: true, listChanged: true } } },
    )
    for (const uri of ['memo://public/a', 'memo://private/b']) {
      server.registerResource(uri, uri, {}, () => ({ contents: [{ uri, text: uri }] }))
    }
    return server
  }
  const { url: upstream, handler } = await modernMcpServer(t, factory)
  const mesh = await startMcpMesh(t, { upstream, serverPolicy: POLICY })
  const client = new Client({ name: 'agent', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } })
  const updates: string[] = []
  client.setNotificationHandler('notifications/resources/updated', (n) => {
    updates.push(n.params.uri)
  })
  await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
  t.teardown(() => client.close())

  try {
    await client.listen({ resourceSubscriptions: ['memo://public/a', 'memo://private/b'] })
    t.fail('a listen naming a private resource was let through')
  } catch (err) {
    t.match(err, { code: -32602 }, 'refused as the server would a resource it does not have (hidden)')
  }

  const subscription = await client.listen({ resourceSubscriptions: ['memo://public/a'] })
  t.teardown(() => subscription.close())
  t.same(
    subscription.honoredFilter.resourceSubscriptions,
    ['memo://public/a'],
    'an allowed listen is acknowledged',
  )
  handler.bus.publish({ kind: 'resource_updated', uri: 'memo://public/a' })
  const deadline = Date.now() + 5000
  while (updates.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  t.same(updates, ['memo://public/a'], 'the update reached the client through both sidecars')
})

t.test('a resource update the subject may not read is dropped from the listen stream', async (t) => {
  const note = (uri: string) =>
    JSON.stringify({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri } })
  const upstream = await serveHttp(t, (req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      const ack = {
        jsonrpc: '2.0',
        method: 'notifications/subscriptions/acknowledged',
        params: { notifications: { resourceSubscriptions: ['memo://public/a'] } },
      }
      res.write(`event: message\ndata: ${JSON.stringify(ack)}\n\n`)
      // Unasked and not the subject's to read: the sidecar drops it, whatever the server thinks.
      res.write(`id: 2\nevent: message\ndata: ${note('memo://private/b')}\n\n`)
      res.write(`id: 3\nevent: message\ndata: ${note('memo://public/a')}\n\n`)
      res.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 7, result: {} })}\n\n`)
    })
  })
  const mesh = await startMcpMesh(t, { upstream, serverPolicy: POLICY })
  const res = await postListen(mesh.agentUrl, { resourceSubscriptions: ['memo://public/a'] })
  t.equal(res.status, 200)
  const stream = await res.text()
  t.match(stream, /subscriptions\/acknowledged/)
  t.notMatch(stream, /memo:\/\/private\/b/, 'the update for the private resource never reached the client')
  t.match(stream, /id: 2\n\n/, 'its resumption point is kept')
  t.match(stream, /id: 3\nevent: message\ndata: .*memo:\/\/public\/a/, 'the allowed update passes')
  t.match(stream, /"id":7,"result"/, 'the listen ends as the server ended it')
})

t.test('a malformed listen is refused before it reaches the server', async (t) => {
  let reached = 0
  const upstream = await serveHttp(t, (req, res) => {
    reached++
    req.resume()
    res.end()
  })
  const mesh = await startMcpMesh(t, { upstream, serverPolicy: POLICY })
  for (const notifications of [undefined, { resourceSubscriptions: 'memo://public/a' }]) {
    const res = await postListen(mesh.agentUrl, notifications)
    const body = (await res.json()) as { error?: { code?: number } }
    t.equal(body.error?.code, -32602, `invalid params: ${JSON.stringify(notifications)}`)
  }
  t.equal(reached, 0, 'nothing reached the server')
})
