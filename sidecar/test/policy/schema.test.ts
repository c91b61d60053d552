// The published JSON Schema of the policy file agrees with the loader's definitions, and the examples validate.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'
import { type Def, POLICY_FILE } from '../../src/policy/definitions.ts'
import { loadPolicyFile, parsePolicy } from '../../src/policy/file.ts'
import { policyJsonSchema } from '../../src/policy/json-schema.ts'
import { validateJsonSchema } from './json-schema-subset.ts'
import { SCENARIOS } from './scenarios.ts'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const SCHEMA_FILE = join(ROOT, 'sidecar/schema/policy.schema.json')
const EXAMPLES = join(ROOT, 'deploy/examples/policies')
const published = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'))

t.test('the published schema is the one generated from the definitions', async (t) => {
  t.same(published, policyJsonSchema(), 'regenerate sidecar/schema/policy.schema.json from json-schema.ts')
})

type Json = Record<string, unknown>

/** Field paths of the definitions ("rules[].resources[http.route].methods"). */
function defFields(def: Def, at: string, out: Set<string>): void {
  switch (def.t) {
    case 'list':
      defFields(def.items, `${at}[]`, out)
      return
    case 'object':
    case 'exactlyOne':
      for (const [k, f] of Object.entries(def.fields)) {
        out.add(`${at}.${k}`)
        defFields(f.def, `${at}.${k}`, out)
      }
      return
    case 'stringOrObject':
      defFields(def.object, at, out)
      return
    case 'tagged':
      for (const [k, v] of Object.entries(def.variants)) defFields(v, `${at}<${k}>`, out)
      return
    default:
  }
}

/** The same paths read from the JSON Schema document itself. */
function schemaFields(s: Json, at: string, out: Set<string>): void {
  if (s.type === 'array') schemaFields(s.items as Json, `${at}[]`, out)
  if (s.properties !== undefined) {
    for (const [k, v] of Object.entries(s.properties as Record<string, Json>)) {
      out.add(`${at}.${k}`)
      schemaFields(v, `${at}.${k}`, out)
    }
  }
  if (Array.isArray(s.oneOf)) {
    const options = s.oneOf as Json[]
    const tagged = options.every((o) => (o.properties as Json | undefined)?.kind !== undefined)
    for (const o of options) {
      const kind = (
        (o.properties as Record<string, Json> | undefined)?.kind?.enum as string[] | undefined
      )?.[0]
      schemaFields(o, tagged ? `${at}<${kind}>` : at, out)
    }
  }
}

t.test('every field the loader knows is in the published schema, and nothing else', async (t) => {
  const fromDefs = new Set<string>()
  defFields(POLICY_FILE, '', fromDefs)
  const fromSchema = new Set<string>()
  schemaFields(published, '', fromSchema)
  t.same(
    [...fromSchema].filter((f) => !fromDefs.has(f)),
    [],
    'in the schema, unknown to the loader',
  )
  t.same(
    [...fromDefs].filter((f) => !fromSchema.has(f)),
    [],
    'known to the loader, missing from the schema',
  )
  t.ok(fromDefs.has('.rules[].resources[]<http.route>.methods'))
  t.ok(fromDefs.has('.rules[].subjects[].trustDomain'))
  t.ok(fromDefs.has('.rules[].when'))
})

t.test('every example policy validates against the schema and loads', async (t) => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'))
  t.ok(files.length >= 1)
  for (const f of files) {
    const text = readFileSync(join(EXAMPLES, f), 'utf8')
    t.match(
      text,
      /yaml-language-server: \$schema=\.\.\/\.\.\/\.\.\/sidecar\/schema\/policy\.schema\.json/,
      `${f} names the schema`,
    )
    t.same(validateJsonSchema(published, parse(text)), [], `${f} validates against the schema`)
    t.ok(loadPolicyFile(join(EXAMPLES, f)).engine.rules.length > 0, `${f} loads`)
  }
})

t.test('every scenario policy validates against the schema too', async (t) => {
  for (const g of SCENARIOS) t.same(validateJsonSchema(published, parse(g.policy)), [], g.name)
})

t.test('the schema and the loader refuse the same mistakes', async (t) => {
  const good = parse(readFileSync(join(EXAMPLES, 'mesh.yaml'), 'utf8'))
  const bad: [string, unknown][] = [
    ['unknown top-level field', { ...good, extra: 1 }],
    ['unknown rule field', { ...good, rules: [{ ...good.rules[0], efect: 'deny' }] }],
    ['bad effect', { ...good, rules: [{ ...good.rules[0], effect: 'permit' }] }],
    ['unknown kind', { ...good, rules: [{ ...good.rules[0], resources: [{ kind: 'x.y', name: 'a' }] }] }],
    [
      'two subject keys',
      { ...good, rules: [{ ...good.rules[0], subjects: [{ id: 'spiffe://a/b', trustDomain: 'a' }] }] },
    ],
    ['empty subjects', { ...good, rules: [{ ...good.rules[0], subjects: [] }] }],
    ['missing version', { rules: [] }],
  ]
  for (const [what, doc] of bad) {
    t.not(validateJsonSchema(published, doc).length, 0, `schema refuses: ${what}`)
    t.throws(
      () => parsePolicy(JSON.stringify(doc), 'bad.json'),
      { code: 'SVD_POLICY_INVALID' },
      `loader refuses: ${what}`,
    )
  }
})
