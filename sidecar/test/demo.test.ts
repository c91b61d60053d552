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
  t.match(stdout, /LLM demo-small \(allowed, streamed\): 200, 7 events: "Hello from the demo model\."/)
  t.match(stdout, /LLM demo-large \(denied\): 403 SVD_POLICY_DENIED: /)
  t.match(stdout, /LLM model list as the agent sees it: demo-small\n/)
  t.match(
    stdout,
    /audit: \{[^\n]*"action":"llm\.model","resource":"demo-small","decision":"allow","rule":"agent-small-model"/,
  )
  t.match(stdout, /audit: \{[^\n]*"action":"llm\.model","resource":"demo-large","decision":"deny"/)
  t.notMatch(stdout, /audit: [^\n]*"action":"http\.route"/, 'only model decisions of the agent are shown')
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
