// What the MCP lens refuses before anything is forwarded: malformed JSON-RPC, batches hiding a denied call,
// stateless-era (2026-07-28) requests whose mirrored headers disagree with the body, versions it cannot
// check, oversized bodies; with raw HTTP through the agent's sidecar to the server's, and a real SDK server.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import t, { type Test } from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { McpTestServer } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: echo-only
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: echo }, { kind: mcp.resource, uri: "file:///public/**" }]
  - id: explain-write
    effect: deny
    denyStyle: explain
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: write_file }]
  - id: forbid-forbidden
    effect: deny
    denyStyle: forbid
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: forbidden_tool }]
`

interface Setup {
  upstream: McpTestServer
  url: string
  session: string
}

async function setup(t: Test, serverMcp?: string): Promise<Setup> {
  const upstream = await McpTestServer.start('json')
  t.teardown(() => upstream.close())
  const mesh = await startMcpMesh(t, {
    upstream: upstream.url,
    serverPolicy: POLICY,
    ...(serverMcp === undefined ? {} : { serverMcp }),
  })
  const client = new Client({ name: 'raw', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(mesh.agentUrl))
  await client.connect(transport)
  t.teardown(() => client.close())
  return { upstream, url: mesh.agentUrl, session: transport.sessionId as string }
}

async function post(
  s: Setup,
  body: string | object,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: unknown; headers: Headers }> {
  const res = await fetch(s.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': s.session,
      'mcp-protocol-version': '2025-11-25',
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = text
  }
  return { status: res.status, json, headers: res.headers }
}

const call = (id: unknown, name: string, extra: object = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: {} },
  ...extra,
})

t.test('malformed JSON-RPC gets the JSON-RPC error and reaches nothing', async (t) => {
  const s = await setup(t)
  const before = s.upstream.seen.length
  const cases: Array<[string, string | object, number, Record<string, string>?]> = [
    ['not JSON', '{"jsonrpc":', -32700],
    ['a string', '"hello"', -32600],
    ['wrong version', { ...call(1, 'echo'), jsonrpc: '1.0' }, -32600],
    ['no jsonrpc', { id: 1, method: 'ping' }, -32600],
    ['a null id', call(null, 'echo'), -32600],
    ['a fractional id', call(1.5, 'echo'), -32600],
    ['an object id', call({ a: 1 }, 'echo'), -32600],
    ['params not an object', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: ['echo'] }, -32602],
    ['a batch where 2025-11-25 forbids it', [call(1, 'echo')], -32600],
    ['an empty batch', [], -32600, { 'mcp-protocol-version': '2025-03-26' }],
    [
      'duplicate ids in a batch',
      [call(1, 'echo'), call(1, 'echo')],
      -32600,
      { 'mcp-protocol-version': '2025-03-26' },
    ],
    ['an unknown version', call(1, 'echo'), -32022, { 'mcp-protocol-version': '1999-01-01' }],
  ]
  for (const [what, body, code, headers] of cases) {
    const r = await post(s, body, headers)
    t.equal(r.status, 400, what)
    t.match(r.json, { jsonrpc: '2.0', error: { code } }, what)
    t.match(r.headers.get('x-svidecar-upstream-error'), /^SVD_MCP_/, what)
  }
  const unknown = await post(s, { jsonrpc: '2.0', id: 9, method: 'admin/shutdown' })
  t.match(unknown.json, { id: 9, error: { code: -32601 } }, 'an unknown method is not let through')
  const noName = await post(s, { jsonrpc: '2.0', id: 10, method: 'tools/call', params: { arguments: {} } })
  t.match(noName.json, { id: 10, error: { code: -32602 } }, 'tools/call without a name')
  const version = await post(s, call(1, 'echo'), { 'mcp-protocol-version': '1999-01-01' })
  t.match(version.json, {
    error: {
      data: {
        supported: ['2024-10-07', '2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25', '2026-07-28'],
      },
    },
  })
  t.equal(s.upstream.seen.length, before, 'nothing reached the server')
})

t.test('a body over mcp.maxMessageBytes is refused with 413 before it is forwarded', async (t) => {
  const s = await setup(t, '{ paths: ["/mcp"], maxMessageBytes: 2048 }')
  const before = s.upstream.seen.length
  const r = await post(
    s,
    call(1, 'echo', { params: { name: 'echo', arguments: { text: 'x'.repeat(4096) } } }),
  )
  t.equal(r.status, 413)
  t.equal(r.headers.get('x-svidecar-upstream-error'), 'SVD_REQUEST_BODY_TOO_LARGE')
  t.equal(s.upstream.seen.length, before)
  const small = await post(s, call(2, 'echo'))
  t.equal(small.status, 200, 'a body under the cap passes')
})

t.test('batches (2025-03-26): every element decided, one denial refuses the whole batch', async (t) => {
  const s = await setup(t)
  const legacy = { 'mcp-protocol-version': '2025-03-26' }
  const before = s.upstream.seen.length
  const hidden = await post(
    s,
    [
      call(1, 'echo'),
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } },
      call(2, 'secret_tool'),
    ],
    legacy,
  )
  t.equal(hidden.status, 200)
  t.same(
    hidden.json,
    [
      {
        jsonrpc: '2.0',
        id: 1,
        error: { code: 403, message: 'not forwarded: another message of this batch was refused' },
      },
      { jsonrpc: '2.0', id: 2, error: { code: -32602, message: 'Unknown tool: secret_tool' } },
    ],
    'the hidden call answers as unknown; its allowed sibling is not forwarded',
  )
  t.equal(
    hidden.headers.get('x-svidecar-upstream-error'),
    null,
    'a hidden denial leaves no sign of the sidecar',
  )

  const explained = await post(s, [call('a', 'write_file'), call('b', 'echo')], legacy)
  t.match(explained.json, [
    { id: 'a', result: { isError: true, content: [{ text: /rule explain-write/ }] } },
    { id: 'b', error: { code: 403 } },
  ])
  t.equal(explained.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_DENIED')

  const forbidden = await post(s, [call(1, 'echo'), call(2, 'forbidden_tool')], legacy)
  t.equal(forbidden.status, 403, 'a forbid denial refuses the batch with 403')
  t.match(
    forbidden.headers.get('www-authenticate'),
    /^Bearer error="insufficient_scope", scope="mcp\.tool:forbidden_tool"/,
  )
  t.match(forbidden.json, { id: null, error: { code: 403 } })
  t.equal(s.upstream.seen.length, before, 'nothing of a refused batch reached the server')

  const ok = await post(s, [call(1, 'echo'), { jsonrpc: '2.0', id: 2, method: 'ping' }], legacy)
  t.not(ok.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_DENIED')
  t.same(
    s.upstream.seen.slice(before).map((m) => [m.method, m.batch]),
    [
      ['tools/call', true],
      ['ping', true],
    ],
    'an allowed batch is forwarded whole',
  )
})

t.test(
  '2026-07-28: Mcp-Method and Mcp-Name must equal the body (400, -32020), else it is forwarded',
  async (t) => {
    const s = await setup(t)
    const before = s.upstream.seen.length
    const modern = (method: string, name?: string) => ({
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...(name === undefined ? {} : { 'mcp-name': name }),
    })
    const meta = { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } }
    const body = (name: string) => ({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name, arguments: {}, ...meta },
    })
    const cases: Array<[string, object, Record<string, string>]> = [
      ['Mcp-Method differs', body('echo'), modern('tools/list', 'echo')],
      [
        'Mcp-Name differs (routes to one tool, asks another)',
        body('secret_tool'),
        modern('tools/call', 'echo'),
      ],
      ['Mcp-Name missing', body('echo'), modern('tools/call')],
      ['Mcp-Method missing', body('echo'), { 'mcp-protocol-version': '2026-07-28', 'mcp-name': 'echo' }],
      [
        '_meta names another version',
        {
          ...body('echo'),
          params: { name: 'echo', _meta: { 'io.modelcontextprotocol/protocolVersion': '2025-11-25' } },
        },
        modern('tools/call', 'echo'),
      ],
      ['a malformed base64 value', body('echo'), modern('tools/call', '=?base64?***?=')],
      [
        'a modern body without the version header',
        body('echo'),
        { 'mcp-protocol-version': '', 'mcp-method': 'tools/call' },
      ],
    ]
    for (const [what, b, headers] of cases) {
      const h = { ...headers }
      if (h['mcp-protocol-version'] === '') delete h['mcp-protocol-version']
      const res = await fetch(s.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...h },
        body: JSON.stringify(b),
      })
      t.equal(res.status, 400, what)
      t.match(await res.json(), { error: { code: -32020 } }, what)
      t.equal(res.headers.get('x-svidecar-upstream-error'), 'SVD_MCP_HEADER_MISMATCH', what)
    }
    t.equal(s.upstream.seen.length, before, 'nothing reached the server')

    // Equal headers (one base64-encoded, as the spec encodes non-ASCII values) pass the lens and the policy.
    const encoded = `=?base64?${Buffer.from('echo').toString('base64')}?=`
    const res = await fetch(s.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...modern('tools/call', encoded),
        'mcp-session-id': s.session,
      },
      body: JSON.stringify(body('echo')),
    })
    await res.body?.cancel()
    t.equal(res.headers.get('x-svidecar-upstream-error'), null, 'not refused by a sidecar')
    t.same(
      s.upstream.seen.slice(before).map((m) => m.name),
      ['echo'],
      'forwarded to the server',
    )
    t.equal(
      s.upstream.seen.at(-1)?.sessionId,
      undefined,
      'without its session id: the stateless era has none',
    )
    const denied = await fetch(s.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...modern('tools/call', 'secret_tool'),
      },
      body: JSON.stringify(body('secret_tool')),
    })
    t.match(
      await denied.json(),
      { error: { code: -32602, message: 'Unknown tool: secret_tool' } },
      'and decided like any call',
    )
  },
)
