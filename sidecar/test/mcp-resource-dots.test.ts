// resources/read with the official SDK 1.x client through two sidecars: a URI whose dot segment is spelled so the
// WHATWG URL parser (new URL, fileURLToPath, which MCP file servers use) resolves it out of the allowed root is
// refused, never matched by file:///public/**, and never reaches the server.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpError } from '@modelcontextprotocol/sdk/types.js'
import t from 'tap'
import { on, type PolicyDecisionEvent } from '../src/observe/events.ts'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { McpTestServer } from './helpers/mcp-server.ts'

const POLICY = `version: 1
denyStyle: hide
rules:
  - id: public-files
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.resource, uri: "file:///public/**" }]
`

t.test('resources/read: %2e%2e and friends under an allowed root are denied', async (t) => {
  const upstream = await McpTestServer.start('json')
  t.teardown(() => upstream.close())
  const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
  const denied: PolicyDecisionEvent[] = []
  t.teardown(on('policyDecision', (e) => e.decision === 'deny' && denied.push(e)))
  const client = new Client({ name: 'svidecar-test-agent', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
  t.teardown(() => client.close())

  t.match(await client.readResource({ uri: 'file:///public/readme.txt' }), {
    contents: [{ text: 'contents of file:///public/readme.txt' }],
  })
  for (const uri of [
    'file:///public/%2e%2e/private/keys.txt',
    'file:///public/%2E./private/keys.txt',
    'file:///public/.%2e/private/keys.txt',
    'file:///public\\..\\private\\keys.txt',
  ]) {
    t.notMatch(new URL(uri).pathname, /^\/public\//, `${uri}: a URL parser reads it outside /public`)
    try {
      await client.readResource({ uri })
      t.fail(`${uri}: expected a refusal`)
    } catch (err) {
      t.type(err, McpError, uri)
      t.equal((err as McpError).code, -32002, `${uri}: hidden, answered as not found`)
    }
    t.match(denied.at(-1), { action: 'mcp.resource', reason: /dot segment/ }, `${uri}: the audit says why`)
  }
})
