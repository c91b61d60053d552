// An item left out of a list is audited the first time, not on every list: an agent that lists its tools at
// every session start would otherwise write one line per hidden tool each time. A call is audited every time.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import t from 'tap'
import { on, type PolicyDecisionEvent } from '../src/observe/events.ts'
import { ListAuditWindow } from '../src/pipeline/list-audit.ts'
import { AGENT, AGENT2, startMcpMesh } from './helpers/mcp-mesh.ts'
import { McpTestServer } from './helpers/mcp-server.ts'

t.test('the window: first time, again after the window, again when what decided changes', async (t) => {
  let now = 1000
  const w = new ListAuditWindow(3, 60_000, () => now)
  t.ok(w.due('agent/a', 'secret', 'r1'), 'first time')
  t.notOk(w.due('agent/a', 'secret', 'r1'), 'not again in the window')
  t.ok(w.due('agent/b', 'secret', 'r1'), 'another scope (subject, upstream, list) is its own')
  t.ok(w.due('agent/a', 'secret', 'r2'), 'another rule decided it')
  t.notOk(w.due('agent/a', 'secret', 'r2'))
  now += 60_000
  t.ok(w.due('agent/a', 'secret', 'r2'), 'the window passed')
  t.notOk(w.due('agent/a', 'secret', 'r2'))
  // Bounded: past three items the oldest is forgotten, and so audited again.
  t.ok(w.due('agent/a', 'x', 'r1'))
  t.ok(w.due('agent/a', 'y', 'r1'))
  t.ok(w.due('agent/b', 'secret', 'r1'), 'forgotten when the table was full, audited again')
  t.notOk(w.due('agent/a', 'y', 'r1'), 'the newest are kept')
})

const POLICY = `version: 1
rules:
  - id: tools
    effect: allow
    subjects: ["${AGENT}", "${AGENT2}"]
    resources: [{ kind: mcp.tool, name: echo }]
`

for (const mode of ['json', 'sse'] as const) {
  t.test(`a hidden tool is audited once per lister, a call to it each time (${mode})`, async (t) => {
    const upstream = await McpTestServer.start(mode)
    t.teardown(() => upstream.close())
    const mesh = await startMcpMesh(t, { upstream: upstream.url, serverPolicy: POLICY })
    const events: PolicyDecisionEvent[] = []
    t.teardown(on('policyDecision', (e) => events.push(e)))
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
    t.teardown(() => client.close())

    for (let i = 0; i < 3; i++)
      t.same(
        (await client.listTools()).tools.map((x) => x.name),
        ['echo'],
      )
    const hidden = (subject: string) =>
      events.filter(
        (e) =>
          e.direction === 'inbound' &&
          e.subject === subject &&
          e.action === 'mcp.tool' &&
          e.decision === 'deny' &&
          e.resource !== 'echo',
      )
    const once = hidden(AGENT)
    t.same(
      once.map((e) => e.resource).sort(),
      ['explained_tool', 'forbidden_tool', 'progress', 'secret_tool', 'write_file'],
      'each hidden tool audited once over three lists',
    )
    t.match(once[0], { reason: /no rule allows mcp\.tool/, mode: 'enforce' })

    const other = new Client({ name: 'agent2', version: '1.0.0' })
    await other.connect(new StreamableHTTPClientTransport(new URL(mesh.agent2Url)))
    t.teardown(() => other.close())
    await other.listTools()
    t.equal(hidden(AGENT2).length, 5, 'another workload listing is audited for itself')

    for (let i = 0; i < 2; i++) {
      await t.rejects(client.callTool({ name: 'secret_tool', arguments: {} }))
    }
    t.equal(
      hidden(AGENT).filter((e) => e.resource === 'secret_tool').length,
      3,
      'the listing once, then both calls',
    )
  })
}

t.test('decisions kept across lists give way to a reloaded policy', async (t) => {
  const upstream = await McpTestServer.start('json')
  t.teardown(() => upstream.close())
  const dir = mkdtempSync(join(tmpdir(), 'svidecar-list-reload-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'server.yaml')
  writeFileSync(file, POLICY)
  const mesh = await startMcpMesh(t, {
    upstream: upstream.url,
    serverPolicyYaml: `policy: { file: "${file}" }`,
  })
  const client = new Client({ name: 'agent', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(mesh.agentUrl)))
  t.teardown(() => client.close())
  for (let i = 0; i < 2; i++)
    t.same(
      (await client.listTools()).tools.map((x) => x.name),
      ['echo'],
    )

  writeFileSync(file, POLICY.replace('name: echo }]', 'name: echo }, { kind: mcp.tool, name: progress }]'))
  const deadline = Date.now() + 15_000
  let names: string[] = []
  while (Date.now() < deadline) {
    names = (await client.listTools()).tools.map((x) => x.name)
    if (names.includes('progress')) break
    await new Promise((r) => setTimeout(r, 100))
  }
  t.same(names, ['echo', 'progress'], 'the newly allowed tool is listed')
})
