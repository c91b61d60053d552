// JSON keys another parser reads as the same member (GHSA-wvj2-96wp-fq3f, GHSA-q382-vc8q-7jhj against the Go MCP
// SDK): Go's encoding/json matches member names case-insensitively and folds ſ (U+017F) to s and K (U+212A) to k,
// and one later parser took a key with a trailing NUL for the key itself; the last such key wins. The lens decides
// on the member JSON.parse reads (`name`), so a body that also holds `Name` could have a Go MCP server (mark3labs
// mcp-go, go-sdk before 1.3.1) run another tool than the one authorized. Such a body is refused (400, -32600)
// before it is forwarded; ordinary calls through the SDK 1.x client are unaffected. The server here is the SDK 1.x
// one: what the test checks is that nothing ambiguous reaches any server.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import t from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { McpTestServer } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: echo
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }]
  - id: write-tmp-only
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: write_file }]
    when: "attributes.mcp.arguments.path.startsWith('/tmp/')"
`

t.test('member names another parser folds together are refused before they are forwarded', async (t) => {
  const upstream = await McpTestServer.start('json')
  t.teardown(() => upstream.close())
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const client = new Client({ name: 'agent', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(mesh.agentUrl))
  await client.connect(transport)
  t.teardown(() => client.close())
  const send = (body: string) =>
    fetch(mesh.agentUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': transport.sessionId as string,
        'mcp-protocol-version': '2025-11-25',
      },
      body,
    })
  const before = upstream.seen.length
  for (const [what, body] of [
    [
      'Name beside name',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"secret_tool"}}',
    ],
    [
      'Method beside method',
      '{"jsonrpc":"2.0","id":2,"method":"ping","Method":"tools/call","params":{"name":"secret_tool"}}',
    ],
    [
      'paramſ beside params',
      '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"},"param\\u017f":{"name":"secret_tool"}}',
    ],
    [
      'a Kelvin sign',
      '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","\\u212aey":1,"key":2}}',
    ],
    [
      'a trailing NUL',
      '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","name\\u0000":"secret_tool"}}',
    ],
    [
      'an argument a condition reads',
      '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"/tmp/a","PATH":"/etc/passwd"}}}',
    ],
    [
      'a nested argument',
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"opts":[{"mode":"r","Mode":"w"}]}}}',
    ],
  ] as const) {
    const res = await send(body)
    t.equal(res.status, 400, `${what}: refused`)
    t.equal(res.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_INVALID', what)
    t.match(await res.json(), { jsonrpc: '2.0', error: { code: -32600, message: /same member/ } }, what)
  }
  t.equal(upstream.seen.length, before, 'none of them reached the server')

  t.same(
    await client.callTool({ name: 'echo', arguments: { text: 'a', text_2: 'b', Path: 'c' } }),
    {
      content: [{ type: 'text', text: 'echo:a' }],
    },
    'names that differ in more than case, or in no other name, are fine',
  )
  t.same(await client.callTool({ name: 'write_file', arguments: { path: '/tmp/b' } }), {
    content: [{ type: 'text', text: 'write_file:/tmp/b' }],
  })
})
