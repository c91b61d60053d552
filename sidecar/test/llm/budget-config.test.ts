// The `budgets` section: what it parses to, the problems it reports, and which budgets a call falls under.
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { BudgetTable, globRegExp } from '../../src/budget/limits.ts'
import { type ConfigError, parseConfig } from '../../src/config/index.ts'

const BASE = `outbound:
  - name: egress
    address: "127.0.0.1:15001"
    routes: [{ lens: llm }]
upstreams:
  llm: { url: "https://api.example.com" }
llm:
  providers:
    local: { kind: openai-compatible, upstream: llm }
`

function problems(yaml: string): string[] {
  try {
    parseConfig(BASE + yaml, 'b.yaml', {})
  } catch (err) {
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`)
  }
  return []
}

t.test('a budgets section parses with its defaults', async (t) => {
  const c = parseConfig(
    `${BASE}budgets:
  redis: { url: "redis://:s3cret@127.0.0.1:6379/0" }
  limits:
    - name: agents
      subjects: ["spiffe://example.org/agents/*"]
      tokensPerMinute: 100
`,
    'b.yaml',
    {},
  )
  t.same(c.budgets, {
    defaultMaxTokens: 4096,
    extendTokens: 256,
    limits: [
      { name: 'agents', subjects: ['spiffe://example.org/agents/*'], perModel: false, tokensPerMinute: 100 },
    ],
    redis: {
      url: 'redis://:s3cret@127.0.0.1:6379/0',
      keyPrefix: 'svidecar:budget:',
      timeoutMs: 250,
      onUnavailable: 'deny',
    },
  })
  t.equal(parseConfig(BASE, 'b.yaml', {}).budgets, undefined, 'no section, no budgets')
})

t.test('problems are reported, and a Redis URL is never echoed', async (t) => {
  const schema = problems(`budgets:
  redis: { url: "http://user:s3cret@host" }
  limits:
    - name: b
      subjects: ["spiffe://example.org/x"]
      requestsPerMinute: 0
`)
  t.ok(schema.some((p) => p.startsWith('budgets.redis.url:')))
  t.notOk(
    schema.some((p) => p.includes('s3cret')),
    'the password is not in any message',
  )
  t.ok(schema.some((p) => p.startsWith('budgets.limits[0].requestsPerMinute:')))
  const meaning = problems(`budgets:
  limits:
    - name: a
      subjects: ["spiffe://example.org/x"]
    - name: a
      subjects: ["not-an-id"]
      tokensPerDay: 10
    - name: b
      subjects: ["spiffe://example.org/x"]
      perModel: true
      requestsPerMinute: 1
`)
  t.ok(meaning.some((p) => p.startsWith('budgets.limits[1].name:') && p.includes('twice')))
  t.ok(meaning.some((p) => p.startsWith('budgets.limits[1].subjects[0]:')))
  t.ok(meaning.some((p) => p.startsWith('budgets.limits[0]:') && p.includes('tokensPerMinute')))
  t.ok(meaning.some((p) => p.startsWith('budgets.limits[2].perModel:')))
  t.ok(problems('budgets: { limits: [] }\n').length === 0, 'an empty list is valid (nothing budgeted)')
  let withoutLens: string[] = []
  try {
    parseConfig('budgets: { limits: [] }\n', 'b.yaml', {})
  } catch (err) {
    withoutLens = (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`)
  }
  t.ok(
    withoutLens.some((p) => p.startsWith('budgets: applies to LLM calls')),
    'budgets without the LLM lens would count nothing, so they are refused',
  )
})

t.test('which budgets a call falls under', async (t) => {
  const table = new BudgetTable([
    { name: 'all', subjects: ['spiffe://example.org/agents/*'], perModel: false, tokensPerMinute: 10 },
    {
      name: 'large',
      subjects: ['spiffe://example.org/agents/planner'],
      models: ['gpt-4o', 'claude-*-large'],
      perModel: true,
      tokensPerDay: 5,
    },
  ])
  const planner = SpiffeId.parse('spiffe://example.org/agents/planner')
  const other = SpiffeId.parse('spiffe://example.org/agents/coder')
  t.same(
    table.keys(planner, 'claude-3-large').map((k) => k.id),
    ['all|spiffe://example.org/agents/planner', 'large|spiffe://example.org/agents/planner|claude-3-large'],
  )
  t.same(
    table.keys(other, 'gpt-4o').map((k) => k.id),
    ['all|spiffe://example.org/agents/coder'],
    'each subject has its own',
  )
  t.same(table.keys(SpiffeId.parse('spiffe://example.org/db'), 'gpt-4o'), [], 'not budgeted')
  t.same(table.literalModels(), ['gpt-4o'])
  t.ok(globRegExp('gpt-4o*').test('gpt-4o-mini'))
  t.notOk(globRegExp('gpt-4.o').test('gpt-4xo'), 'dots are literal')
})
