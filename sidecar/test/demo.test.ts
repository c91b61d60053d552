import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const bin = fileURLToPath(new URL('../bin/svidecar.js', import.meta.url))
const svidecar = (...args: string[]) =>
  run(process.execPath, ['--conditions=svidecar-source', bin, ...args], { timeout: 60_000 })

t.test('svidecar demo: traffic over mTLS between two sidecars, through SVID rotations', async (t) => {
  const { stdout } = await svidecar('demo', '--ttl', '3', '--rotations', '2', '--interval', '0.3')
  t.match(stdout, /X\.509-SVID spiffe:\/\/example\.org\/demo\/agent serial [0-9A-F]+ valid until/)
  t.match(stdout, /X\.509-SVID spiffe:\/\/example\.org\/demo\/mcp-server serial [0-9A-F]+ valid until/)
  t.match(stdout, /curl http:\/\/127\.0\.0\.1:\d+\/tools\/list/, 'says how to send your own request')
  t.match(stdout, /Metrics of the agent's sidecar: +curl http:\/\/127\.0\.0\.1:\d+\/metrics/)
  t.match(stdout, /Metrics of the MCP server's sidecar: +curl http:\/\/127\.0\.0\.1:\d+\/metrics/)
  t.match(stdout, /export SPIFFE_ENDPOINT_SOCKET=unix:\/\/\/\S+agent\.sock/)
  t.match(stdout, /request 1: 200 from the app; it saw caller spiffe:\/\/example\.org\/demo\/agent/)
  t.match(
    stdout,
    /policy: ALLOW POST \/tools\/call\/1 for spiffe:\/\/example\.org\/demo\/agent by rule agent-calls-tools \(.*; traceparent 00-[0-9a-f]{32}-[0-9a-f]{16}-01\)/,
  )
  t.match(
    stdout,
    /policy: DENY POST \/admin\/reset for spiffe:\/\/example\.org\/demo\/agent by rule no-admin/,
  )
  t.match(stdout, /denied route: POST \/admin\/reset: 403 SVD_POLICY_DENIED: /)
  t.notMatch(stdout, /denied route: .*no-admin/, 'the response does not name the rule')
  t.equal(stdout.match(/policy: ALLOW/g)?.length, 1, 'one allowed decision shown, not one per request')
  t.match(stdout, /Call the LLM gateway with no key: +curl http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions/)
  // The lines of one step, up to the next step's line: its audit lines follow it.
  const step = (start: RegExp): string => {
    const from = stdout.search(start)
    if (from === -1) return ''
    const rest = stdout.slice(from)
    const next = rest.slice(1).search(/\n\S+ {2}(?! {2}audit:|rotation)\S/)
    return next === -1 ? rest : rest.slice(0, next + 2)
  }
  const audits = (text: string) =>
    [...text.matchAll(/ {2}audit: (\{.*\})/g)].map((m) => JSON.parse(m[1] ?? '{}'))

  // LLM: an allowed model streamed, with its decision and usage lines.
  const small = step(/LLM demo-small \(allowed, streamed\)/)
  t.match(small, /LLM demo-small \(allowed, streamed\): 200, 7 events: "Hello from the demo model\."/)
  t.match(audits(small), [
    { action: 'llm.model', resource: 'demo-small', decision: 'allow', rule: 'agent-small-model' },
    { kind: 'llm.usage', model: 'demo-small', status: 200, tokensIn: 5, tokensOut: 5, estimated: false },
  ])
  t.same(audits(small)[1].budgetRemaining, { tokensPerDay: 90 }, 'the usage settled against the daily budget')
  // A denied model: 403 in OpenAI's error shape, and a deny line naming no rule (the default deny).
  const large = step(/LLM demo-large \(denied\)/)
  t.match(
    large,
    /LLM demo-large \(denied\): 403 in OpenAI's error shape, type permission_error, code SVD_POLICY_DENIED: /,
  )
  t.same(audits(large), [{ action: 'llm.model', resource: 'demo-large', decision: 'deny' }])
  const models = step(/LLM model list as the agent sees it/)
  t.match(models, /LLM model list as the agent sees it: demo-small \(/)
  t.same(
    audits(models),
    [{ action: 'llm.model', resource: 'demo-large', decision: 'deny' }],
    'the filter audits its denial',
  )
  // The budget runs out mid-stream: the stream ends with the error frame, the usage line says so.
  const long = step(/LLM demo-small long answer/)
  t.match(
    long,
    /LLM demo-small long answer: 200, the budget ran out mid-stream: after \d+ events the stream ended with the API's error frame SVD_BUDGET_EXHAUSTED: /,
  )
  const cutEvents = Number(/after (\d+) events/.exec(long)?.[1])
  t.ok(
    cutEvents > 10 && cutEvents < 500,
    `the stream was cut partway through the 500-word answer (${cutEvents} events)`,
  )
  t.match(audits(long), [
    { action: 'llm.model', decision: 'allow' },
    {
      kind: 'llm.usage',
      code: 'SVD_BUDGET_EXHAUSTED',
      budgetRemaining: { tokensPerDay: 0 },
      budgetRefusal: { at: 'stream', name: 'agent-daily' },
    },
  ])
  // Then the spent budget refuses before anything is forwarded.
  const again = step(/LLM demo-small again/)
  t.match(again, /LLM demo-small again: 429 SVD_BUDGET_EXHAUSTED, retry-after [1-9]\d* s/)
  t.match(audits(again), [
    { action: 'llm.model', decision: 'allow' },
    {
      kind: 'llm.usage',
      status: 0,
      code: 'SVD_BUDGET_EXHAUSTED',
      budgetRefusal: { at: 'before', kind: 'tokensPerDay' },
    },
  ])
  t.notMatch(stdout, /audit: [^\n]*"action":"http\.route"/, 'route decisions are not repeated as audit lines')

  // MCP: the list filtered to the allowed tools, an allowed call, and each denial style with its audit line.
  const tools = step(/MCP tools\/list as the agent sees it/)
  t.match(tools, /MCP tools\/list as the agent sees it: search_docs, delete_repo, deploy \(/)
  t.match(
    audits(tools).find((a) => a.resource === 'read_secrets'),
    { action: 'mcp.tool', decision: 'deny' },
    'the hidden tool is audited',
  )
  const search = step(/MCP search_docs \(allowed\)/)
  t.match(
    search,
    /MCP search_docs \(allowed\): "3 documents mention "budgets" \(called by spiffe:\/\/example\.org\/demo\/agent\)"/,
  )
  t.same(audits(search), [
    { action: 'mcp.tool', resource: 'search_docs', decision: 'allow', rule: 'agent-searches-docs' },
  ])
  const hide = step(/MCP read_secrets \(denied, hide\)/)
  t.match(hide, /MCP read_secrets \(denied, hide\): JSON-RPC error -32602 "Unknown tool: read_secrets"/)
  t.same(audits(hide), [{ action: 'mcp.tool', resource: 'read_secrets', decision: 'deny' }])
  const explain = step(/MCP delete_repo \(denied, explain\)/)
  t.match(
    explain,
    /MCP delete_repo \(denied, explain\): a tool result with isError true: "[^"\n]*no-deletes[^"\n]*"/,
  )
  t.same(audits(explain), [
    { action: 'mcp.tool', resource: 'delete_repo', decision: 'deny', rule: 'no-deletes' },
  ])
  const forbid = step(/MCP deploy \(denied, forbid\)/)
  t.match(
    forbid,
    /MCP deploy \(denied, forbid\): HTTP 403, WWW-Authenticate: Bearer error="insufficient_scope", scope="mcp\.tool:deploy"/,
  )
  t.same(audits(forbid), [
    { action: 'mcp.tool', resource: 'deploy', decision: 'deny', rule: 'deploy-needs-approval' },
  ])
  t.notMatch(stdout, /sk-demo-/, 'the model key is never printed')
  t.match(stdout, /rotation 2: new X\.509-SVID spiffe:\/\/example\.org\/demo\/agent serial [0-9A-F]+/)
  const serverSerials = new Set(
    [...stdout.matchAll(/server certificate serial ([0-9A-F]+)/g)].map((m) => m[1]),
  )
  t.ok(serverSerials.size >= 2, 'requests after a rotation met the server’s new certificate')
  t.notMatch(stdout, /request \d+: (?!200)/, 'no request failed')
  t.match(stdout, /stopped\n$/)
})

t.test('svidecar --help and demo --help describe the commands; unknown commands fail', async (t) => {
  t.match((await svidecar('--help')).stdout, /Usage: svidecar <command>[\s\S]*demo/)
  t.match((await svidecar('demo', '--help')).stdout, /--ttl <seconds>/)
  await t.rejects(svidecar('nonsense'), { code: 2 })
  await t.rejects(svidecar('demo', '--ttl', 'x'), { code: 2 }, 'a bad option value is a usage error')
})
