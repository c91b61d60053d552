// The demo's minimal MCP server on its own (no sidecar): it answers the Streamable HTTP transport as the spec
// says, so what the demo shows through the MCP lens is the lens's doing.
import t from 'tap'
import { startDemoApp } from '../src/dev/demo-app.ts'

t.test('the demo MCP server speaks JSON-RPC over Streamable HTTP', async (t) => {
  const app = await startDemoApp('x-spiffe-id')
  t.teardown(() => app.server.close())
  const url = `${app.url}/mcp`
  const post = async (body: string) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'x-spiffe-id': 'spiffe://example.org/demo/agent',
      },
      body,
    })
    const text = await res.text()
    return { status: res.status, doc: text === '' ? undefined : JSON.parse(text) }
  }
  const rpc = (method: string, params: unknown = {}) =>
    post(JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }))

  t.match(await rpc('initialize', { protocolVersion: '2025-06-18' }), {
    status: 200,
    doc: { id: 1, result: { protocolVersion: '2025-06-18', capabilities: { tools: {} } } },
  })
  t.match(await rpc('initialize', { protocolVersion: '2099-01-01' }), {
    doc: { result: { protocolVersion: '2025-11-25' } },
  })
  t.same(await post('{"jsonrpc":"2.0","method":"notifications/initialized"}'), {
    status: 202,
    doc: undefined,
  })
  const list = await rpc('tools/list')
  t.same(
    list.doc.result.tools.map((tool: { name: string }) => tool.name),
    ['search_docs', 'delete_repo', 'deploy', 'read_secrets'],
  )
  t.match(await rpc('tools/call', { name: 'search_docs', arguments: { query: 'x' } }), {
    doc: {
      result: { isError: false, content: [{ text: /called by spiffe:\/\/example\.org\/demo\/agent/ }] },
    },
  })
  t.match(await rpc('tools/call', { name: 'nope' }), {
    doc: { error: { code: -32602, message: 'Unknown tool: nope' } },
  })
  t.match(await rpc('resources/list'), { doc: { error: { code: -32601 } } })
  t.match(await post('{'), { status: 400, doc: { id: null, error: { code: -32700 } } })
  t.match(await post('[{"jsonrpc":"2.0","id":1,"method":"ping"}]'), {
    status: 400,
    doc: { error: { code: -32600 } },
  })
  t.match(await post('{"jsonrpc":"1.0","id":1,"method":"ping"}'), {
    status: 400,
    doc: { error: { code: -32600 } },
  })
  const get = await fetch(url)
  t.equal(get.status, 405, 'no server stream is offered')
  t.equal(get.headers.get('allow'), 'POST')
})
