// The MCP lens with engine: opa: every message and every list item is a decision a real OPA server answers
// over HTTP (a promise), so the response filter holds the list answer until OPA has spoken, in JSON bodies and
// in SSE streams alike; `deny_style` in the decision document picks the denial's answer.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import t from 'tap'
import { startMcpMesh } from '../../sidecar/test/helpers/mcp-mesh.ts'
import { McpTestServer } from '../../sidecar/test/helpers/mcp-server.ts'
import { startOpa } from '../harness/opa.ts'
import { requireOpa } from '../harness/opa-available.ts'

const REGO = `package svidecar.mcp

default allow := false

allow if {
  input.action == "mcp.tool"
  input.resource.name in {"echo", "progress"}
}

allow if {
  input.action == "mcp.resource"
  startswith(input.resource.uri, "file:///public/")
}

rule_id := "explain-me" if input.resource.name == "explained_tool"

deny_style := "explain" if input.resource.name == "explained_tool"
`

if (requireOpa(t)) {
  const opa = await startOpa(t, { 'mcp.rego': REGO })
  for (const mode of ['json', 'sse'] as const) {
    t.test(`opa: lists filtered and calls decided by a decision service (${mode})`, async (t) => {
      const upstream = await McpTestServer.start(mode)
      t.teardown(() => upstream.close())
      const mesh = await startMcpMesh(t, {
        upstream: upstream.url,
        serverPolicyYaml: `policy: { engine: opa, opa: { url: "${opa.url}", package: svidecar.mcp, timeout: 2s } }`,
      })
      const client = new Client({ name: 'agent', version: '1.0.0' })
      await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
      t.teardown(() => client.close())
      t.same(
        (await client.listTools()).tools.map((x) => x.name).sort(),
        ['echo', 'explained_tool', 'progress'],
        'hidden by default; the explained tool stays listed',
      )
      t.same(
        (await client.listResources()).resources.map((r) => r.uri),
        ['file:///public/readme.txt'],
      )
      t.same(await client.callTool({ name: 'echo', arguments: { text: 'opa' } }), {
        content: [{ type: 'text', text: 'echo:opa' }],
      })
      const explained = await client.callTool({ name: 'explained_tool', arguments: {} })
      t.equal(explained.isError, true)
      t.match(explained.content, [{ text: /rule explain-me/ }])
      try {
        await client.callTool({ name: 'secret_tool', arguments: {} })
        t.fail('secret_tool ran')
      } catch (err) {
        t.match(err, { code: -32602 })
      }
      t.same(
        upstream.calls('tools/call').map((c) => c.name),
        ['echo'],
      )
    })
  }
}
