import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { AGENT, startMcpMesh } from './helpers/mcp-mesh.ts'
import { serveMcp } from './helpers/mcp-server.ts'

const POLICY = `version: 1
rules:
  - id: allowed
    effect: allow
    subjects: ["${AGENT}"]
    resources: [{ kind: mcp.tool, name: "ok_*" }]
`

const PAGES = [['ok_1', 'secret_1'], ['secret_2', 'secret_3'], ['ok_2']]

function pagingServer(t: Test, json: boolean): Promise<string> {
  return serveMcp(t, {
    transport: () => ({ enableJsonResponse: json }),
    server: () => {
      const server = new Server({ name: 'pages', version: '1.0.0' }, { capabilities: { tools: {} } })
      server.setRequestHandler(ListToolsRequestSchema, (req) => {
        const page = Number(req.params?.cursor ?? '0')
        return {
          tools: (PAGES[page] ?? []).map((name) => ({ name, inputSchema: { type: 'object' as const } })),
          ...(page + 1 < PAGES.length ? { nextCursor: String(page + 1) } : {}),
        }
      })
      return server
    },
  })
}

for (const mode of ['json', 'sse'] as const) {
  t.test(`every page is filtered, cursors pass through (${mode} answers)`, async (t) => {
    const mesh = await startMcpMesh(t, {
      upstream: await pagingServer(t, mode === 'json'),
      serverPolicy: POLICY,
    })
    const client = new Client({ name: 'pager', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
    t.teardown(() => client.close())
    const pages: Array<{ names: string[]; next: string | undefined }> = []
    let cursor: string | undefined
    do {
      const page = await client.listTools(cursor === undefined ? {} : { cursor })
      pages.push({ names: page.tools.map((x) => x.name), next: page.nextCursor })
      cursor = page.nextCursor
    } while (cursor !== undefined && pages.length < 10)
    t.same(pages, [
      { names: ['ok_1'], next: '1' },
      { names: [], next: '2' },
      { names: ['ok_2'], next: undefined },
    ])
  })
}
