// The published JSON Schema of the config file: generated from the loader's SCHEMA, and a real validator (ajv)
// accepts what the loader accepts (the shipped examples, the demo's configs) and refuses mistakes it refuses.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv2020 } from 'ajv/dist/2020.js'
import t from 'tap'
import { parse } from 'yaml'
import { agentSidecarConfig, mcpSidecarConfig } from '../src/cli/demo-configs.ts'
import { parseConfig, SCHEMA } from '../src/config/index.ts'
import { configJsonSchema } from '../src/config/json-schema.ts'
import { fieldPaths } from '../src/config/schema.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const EXAMPLES = join(ROOT, 'deploy/examples')
const published = JSON.parse(readFileSync(join(ROOT, 'sidecar/schema/config.schema.json'), 'utf8'))
// strict: a keyword ajv does not know, or a type mix it cannot check, fails compilation instead of being ignored.
const validate = new Ajv2020({ strict: true, allErrors: true }).compile(published)

function problems(doc: unknown): string[] {
  return validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`)
}

t.test('the published schema is the one generated from SCHEMA', async (t) => {
  t.same(
    published,
    configJsonSchema(),
    'run `npm run schema` to regenerate sidecar/schema/config.schema.json',
  )
})

t.test('every field of SCHEMA is in the published schema', async (t) => {
  // fieldPaths writes list items as `[]` and record entries as `.<name>`; walk the JSON Schema the same way.
  // An object with maxProperties is a choice of one key (exactlyOne), a single field to fieldPaths.
  const walk = (s: Record<string, unknown>, at: string, out: string[]): void => {
    if (s.type === 'array' && s.items !== undefined) walk(s.items as never, `${at}[]`, out)
    else if (s.propertyNames !== undefined) walk(s.additionalProperties as never, `${at}.<name>`, out)
    else if (s.type === 'object' && s.properties !== undefined && s.maxProperties === undefined) {
      for (const [k, v] of Object.entries(s.properties as Record<string, Record<string, unknown>>))
        walk(v, at === '' ? k : `${at}.${k}`, out)
    } else out.push(at)
  }
  const fromSchema: string[] = []
  walk(published, '', fromSchema)
  const leaves = fieldPaths(SCHEMA)
  t.same(
    fromSchema.filter((f) => !leaves.includes(f) && !leaves.some((l) => f.startsWith(`${l}.`))),
    [],
    'nothing in the schema the loader does not know',
  )
  t.same(
    leaves.filter((l) => !fromSchema.some((f) => f === l || f.startsWith(`${l}.`))),
    [],
    'nothing the loader knows missing from the schema',
  )
})

t.test('every example config names the schema, validates against it and loads', async (t) => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'))
  t.ok(files.length >= 3)
  for (const f of files) {
    const text = readFileSync(join(EXAMPLES, f), 'utf8')
    t.match(
      text,
      /^# yaml-language-server: \$schema=\.\.\/\.\.\/sidecar\/schema\/config\.schema\.json\n/,
      `${f} names the schema on its first line`,
    )
    t.same(problems(parse(text)), [], `${f} validates against the schema`)
    t.doesNotThrow(() => parseConfig(text, f, {}), `${f} loads`)
  }
})

t.test("the demo's configs validate against the schema and load", async (t) => {
  const configs = {
    'MCP server side': mcpSidecarConfig({
      socket: 'unix:///tmp/svidecar-demo/agent.sock',
      appUrl: 'http://127.0.0.1:8080',
      agentId: 'spiffe://example.org/demo/agent',
      policyFile: '/tmp/svidecar-demo/policy.yaml',
    }),
    'agent side': agentSidecarConfig({
      socket: 'unix:///tmp/svidecar-demo/agent.sock',
      mcpPort: 15443,
      mcpId: 'spiffe://example.org/demo/mcp-server',
      modelUrl: 'http://127.0.0.1:8000',
      keyFile: '/tmp/svidecar-demo/model-key',
      policyFile: '/tmp/svidecar-demo/agent-policy.yaml',
      agentId: 'spiffe://example.org/demo/agent',
      tokensPerDay: 100,
    }),
  }
  for (const [what, text] of Object.entries(configs)) {
    t.same(problems(parse(text)), [], `${what} validates`)
    // The policy file does not exist here; everything else must pass.
    t.doesNotThrow(() => parseConfig(text, what, {}), `${what} loads`)
  }
})

t.test('the schema and the loader refuse the same mistakes', async (t) => {
  const good = parse(readFileSync(join(EXAMPLES, 'mcp-server.yaml'), 'utf8'))
  const inbound = good.inbound[0]
  const bad: [string, unknown][] = [
    ['unknown top-level field', { ...good, inbund: [] }],
    ['unknown listener field', { ...good, inbound: [{ ...inbound, forwardto: 'http://127.0.0.1:1' }] }],
    ['listener name with capitals', { ...good, inbound: [{ ...inbound, name: 'Public' }] }],
    ['missing required forwardTo', { ...good, inbound: [{ ...inbound, forwardTo: undefined }] }],
    ['address without a port', { ...good, inbound: [{ ...inbound, address: '0.0.0.0' }] }],
    [
      'authorizer with two kinds',
      { ...good, inbound: [{ ...inbound, authorize: { any: true, exact: 'spiffe://a/b' } }] },
    ],
    [
      'authorizer exact not a SPIFFE ID',
      { ...good, inbound: [{ ...inbound, authorize: { exact: 'https://a/b' } }] },
    ],
    ['empty authorizer list', { ...good, inbound: [{ ...inbound, authorize: [] }] }],
    ['unknown log level', { ...good, log: { level: 'verbose' } }],
    ['integer out of range', { ...good, limits: { maxConnections: 0 } }],
    ['a duration in words', { ...good, drainTimeout: '10 seconds' }],
    ['a zero drain timeout', { ...good, drainTimeout: '0s' }],
    ['upstream name with capitals', { ...good, upstreams: { Api: { url: 'https://a.example' } } }],
    ['unknown policy engine', { ...good, policy: { engine: 'rego', file: 'p.yaml' } }],
    ['a boolean as a string', { ...good, metrics: { policyRuleLabel: 'yes' } }],
    ['a credential in policy.headers', { ...good, policy: { file: 'p.yaml', headers: ['Authorization'] } }],
  ]
  for (const [what, doc] of bad) {
    const json = JSON.parse(JSON.stringify(doc))
    t.not(problems(json).length, 0, `schema refuses: ${what}`)
    t.throws(
      () => parseConfig(JSON.stringify(json), 'bad.json', {}),
      { code: 'SVD_CONFIG_INVALID' },
      `loader refuses: ${what}`,
    )
  }
})
