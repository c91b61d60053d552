/**
 * The policy scenario suite, as data: each group is one policy in the
 * built-in format and the decisions it must give. Nothing here is specific to
 * the built-in engine's code: a Cedar or OPA engine runs the same cases
 * against its equivalent policy and must give the same decisions.
 */

export interface ScenarioResource {
  kind: string
  method?: string
  path?: string
  name?: string
  uri?: string
}

export interface ScenarioCase {
  name: string
  subject: string
  peer?: string
  resource: ScenarioResource
  context?: {
    time?: string
    direction?: 'inbound' | 'outbound'
    headers?: Record<string, string>
    attributes?: Record<string, unknown>
  }
  expect: {
    decision: 'allow' | 'deny'
    /** Absent: the default deny (no rule decided). */
    ruleId?: string
    mode?: 'enforce' | 'audit'
    wouldDeny?: boolean
    /** The id of the rule whose condition failed to evaluate. */
    conditionError?: string
  }
}

export interface ScenarioGroup {
  name: string
  policy: string
  cases: ScenarioCase[]
}

/** A fixed time for every case that does not give its own: a Monday, 10:00 UTC. */
export const DEFAULT_TIME = '2026-11-30T10:00:00Z'

const route = (method: string, path: string): ScenarioResource => ({ kind: 'http.route', method, path })

export const SCENARIOS: ScenarioGroup[] = [
  {
    name: 'allow, deny and the default',
    policy: `
version: 1
rules:
  - id: agent-reads
    effect: allow
    subjects: [spiffe://example.org/agent]
    resources:
      - { kind: http.route, methods: [GET], path: /v1/items/* }
      - { kind: llm.model, name: gpt-4o }
  - id: no-secrets
    effect: deny
    subjects: [{ trustDomain: example.org }]
    resources:
      - { kind: http.route, path: /v1/items/secret }
      - { kind: http.route, path: /v1/admin/** }
  - id: agent-all-items
    effect: allow
    subjects: [spiffe://example.org/agent]
    resources: [{ kind: http.route, path: /v1/admin/** }]
`,
    cases: [
      {
        name: 'an exact subject on a route it may use is allowed',
        subject: 'spiffe://example.org/agent',
        resource: route('GET', '/v1/items/42'),
        expect: { decision: 'allow', ruleId: 'agent-reads', mode: 'enforce' },
      },
      {
        name: 'the same route with another method falls to the default deny',
        subject: 'spiffe://example.org/agent',
        resource: route('POST', '/v1/items/42'),
        expect: { decision: 'deny', mode: 'enforce' },
      },
      {
        name: 'an explicit deny beats an allow that also matches',
        subject: 'spiffe://example.org/agent',
        resource: route('GET', '/v1/items/secret'),
        expect: { decision: 'deny', ruleId: 'no-secrets' },
      },
      {
        name: 'a deny written before an allow for the same route still wins (deny-overrides, not first match)',
        subject: 'spiffe://example.org/agent',
        resource: route('GET', '/v1/admin/users'),
        expect: { decision: 'deny', ruleId: 'no-secrets' },
      },
      {
        name: 'another subject of the same trust domain is not allowed by an exact-ID rule',
        subject: 'spiffe://example.org/agent2',
        resource: route('GET', '/v1/items/42'),
        expect: { decision: 'deny' },
      },
      {
        name: 'a child ID is not the exact ID',
        subject: 'spiffe://example.org/agent/sub',
        resource: route('GET', '/v1/items/42'),
        expect: { decision: 'deny' },
      },
      {
        name: 'a model named exactly is allowed',
        subject: 'spiffe://example.org/agent',
        resource: { kind: 'llm.model', name: 'gpt-4o' },
        expect: { decision: 'allow', ruleId: 'agent-reads' },
      },
      {
        name: 'a model that only starts with the allowed name is denied',
        subject: 'spiffe://example.org/agent',
        resource: { kind: 'llm.model', name: 'gpt-4o-mini' },
        expect: { decision: 'deny' },
      },
      {
        name: 'an unknown resource kind is denied',
        subject: 'spiffe://example.org/agent',
        resource: { kind: 'smtp.mail', name: 'x' },
        expect: { decision: 'deny' },
      },
      {
        name: 'a kind the subject has no rule for is denied',
        subject: 'spiffe://example.org/agent',
        resource: { kind: 'mcp.tool', name: 'search' },
        expect: { decision: 'deny' },
      },
    ],
  },
  {
    name: 'subject patterns, trust domains and lists',
    policy: `
version: 1
rules:
  - id: agents-one-level
    effect: allow
    subjects: [spiffe://example.org/agents/*]
    resources: [{ kind: mcp.tool, name: search }]
  - id: agents-any-depth
    effect: allow
    subjects: [{ pattern: "spiffe://example.org/team/**" }]
    resources: [{ kind: mcp.tool, name: fetch }]
  - id: partner-domain
    effect: allow
    subjects: [{ trustDomain: partner.org }]
    resources: [{ kind: mcp.prompt, name: summarize }]
  - id: a-list
    effect: allow
    subjects:
      - spiffe://example.org/billing
      - { id: spiffe://other.org/billing }
      - { pattern: "spiffe://example.org/ns/*/sa/reporter" }
    resources: [{ kind: mcp.resource, uri: "db://reports/*" }]
`,
    cases: [
      {
        name: '* matches exactly one segment',
        subject: 'spiffe://example.org/agents/a1',
        resource: { kind: 'mcp.tool', name: 'search' },
        expect: { decision: 'allow', ruleId: 'agents-one-level' },
      },
      {
        name: '* does not match two segments',
        subject: 'spiffe://example.org/agents/a1/x',
        resource: { kind: 'mcp.tool', name: 'search' },
        expect: { decision: 'deny' },
      },
      {
        name: '* does not match the parent itself',
        subject: 'spiffe://example.org/agents',
        resource: { kind: 'mcp.tool', name: 'search' },
        expect: { decision: 'deny' },
      },
      {
        name: 'a pattern is segment-aware: agents-admin is not under agents',
        subject: 'spiffe://example.org/agents-admin',
        resource: { kind: 'mcp.tool', name: 'search' },
        expect: { decision: 'deny' },
      },
      {
        name: '** matches any depth',
        subject: 'spiffe://example.org/team/a/b/c',
        resource: { kind: 'mcp.tool', name: 'fetch' },
        expect: { decision: 'allow', ruleId: 'agents-any-depth' },
      },
      {
        name: '** also matches the prefix itself',
        subject: 'spiffe://example.org/team',
        resource: { kind: 'mcp.tool', name: 'fetch' },
        expect: { decision: 'allow', ruleId: 'agents-any-depth' },
      },
      {
        name: 'a pattern never crosses trust domains',
        subject: 'spiffe://evil.org/team/a',
        resource: { kind: 'mcp.tool', name: 'fetch' },
        expect: { decision: 'deny' },
      },
      {
        name: 'a trust domain rule matches any ID in it',
        subject: 'spiffe://partner.org/ns/x/sa/y',
        resource: { kind: 'mcp.prompt', name: 'summarize' },
        expect: { decision: 'allow', ruleId: 'partner-domain' },
      },
      {
        name: 'a trust domain rule matches no look-alike domain',
        subject: 'spiffe://partner.org.evil.com/x',
        resource: { kind: 'mcp.prompt', name: 'summarize' },
        expect: { decision: 'deny' },
      },
      {
        name: 'the first entry of a subject list matches',
        subject: 'spiffe://example.org/billing',
        resource: { kind: 'mcp.resource', uri: 'db://reports/2026' },
        expect: { decision: 'allow', ruleId: 'a-list' },
      },
      {
        name: 'an entry of another trust domain in the list matches',
        subject: 'spiffe://other.org/billing',
        resource: { kind: 'mcp.resource', uri: 'db://reports/2026' },
        expect: { decision: 'allow', ruleId: 'a-list' },
      },
      {
        name: 'a wildcard in the middle of a listed pattern matches one segment',
        subject: 'spiffe://example.org/ns/finance/sa/reporter',
        resource: { kind: 'mcp.resource', uri: 'db://reports/q4' },
        expect: { decision: 'allow', ruleId: 'a-list' },
      },
      {
        name: 'a URI pattern * does not match deeper URIs',
        subject: 'spiffe://example.org/billing',
        resource: { kind: 'mcp.resource', uri: 'db://reports/2026/q4' },
        expect: { decision: 'deny' },
      },
    ],
  },
  {
    name: 'resource patterns',
    policy: `
version: 1
rules:
  - id: routes
    effect: allow
    subjects: [spiffe://example.org/app]
    resources:
      - { kind: http.route, methods: [GET, HEAD], path: "/files/*.json" }
      - { kind: http.route, path: "/api/**" }
      - { kind: http.route, methods: [GET], path: "/" }
  - id: tools
    effect: allow
    subjects: [spiffe://example.org/app]
    resources:
      - { kind: mcp.tool, name: "github_*" }
      - { kind: llm.model, name: "claude-*-sonnet*" }
      - { kind: mcp.resource, uri: "file:///repo/**" }
`,
    cases: [
      {
        name: 'a glob inside one path segment matches',
        subject: 'spiffe://example.org/app',
        resource: route('HEAD', '/files/a.json'),
        expect: { decision: 'allow', ruleId: 'routes' },
      },
      {
        name: 'a segment glob does not cross a slash',
        subject: 'spiffe://example.org/app',
        resource: route('GET', '/files/a/b.json'),
        expect: { decision: 'deny' },
      },
      {
        name: '** in a route matches the prefix and everything below',
        subject: 'spiffe://example.org/app',
        resource: route('PATCH', '/api/v2/things/1'),
        expect: { decision: 'allow', ruleId: 'routes' },
      },
      {
        name: 'a query string is not part of the path',
        subject: 'spiffe://example.org/app',
        resource: route('GET', '/api?x=/admin'),
        expect: { decision: 'allow', ruleId: 'routes' },
      },
      {
        name: 'a percent-encoded path is matched decoded',
        subject: 'spiffe://example.org/app',
        resource: route('GET', '/%61pi/x'),
        expect: { decision: 'allow', ruleId: 'routes' },
      },
      {
        name: 'a path with dot segments is refused, never matched',
        subject: 'spiffe://example.org/app',
        resource: route('GET', '/api/../admin'),
        expect: { decision: 'deny' },
      },
      {
        name: 'the root path matches only "/"',
        subject: 'spiffe://example.org/app',
        resource: route('GET', '/'),
        expect: { decision: 'allow', ruleId: 'routes' },
      },
      {
        name: 'a route prefix is segment-aware: /apix is not under /api',
        subject: 'spiffe://example.org/app',
        resource: route('GET', '/apix'),
        expect: { decision: 'deny' },
      },
      {
        name: 'a tool name glob matches',
        subject: 'spiffe://example.org/app',
        resource: { kind: 'mcp.tool', name: 'github_create_issue' },
        expect: { decision: 'allow', ruleId: 'tools' },
      },
      {
        name: 'name globs are case-sensitive',
        subject: 'spiffe://example.org/app',
        resource: { kind: 'mcp.tool', name: 'GITHUB_create_issue' },
        expect: { decision: 'deny' },
      },
      {
        name: 'a model glob with two wildcards matches',
        subject: 'spiffe://example.org/app',
        resource: { kind: 'llm.model', name: 'claude-3-5-sonnet-latest' },
        expect: { decision: 'allow', ruleId: 'tools' },
      },
      {
        name: 'a resource URI under the allowed tree matches',
        subject: 'spiffe://example.org/app',
        resource: { kind: 'mcp.resource', uri: 'file:///repo/src/main.ts' },
        expect: { decision: 'allow', ruleId: 'tools' },
      },
      {
        name: 'a resource URI escaping the tree with .. is refused',
        subject: 'spiffe://example.org/app',
        resource: { kind: 'mcp.resource', uri: 'file:///repo/../etc/passwd' },
        expect: { decision: 'deny' },
      },
      {
        name: 'a tool name is not a prompt name',
        subject: 'spiffe://example.org/app',
        resource: { kind: 'mcp.prompt', name: 'github_x' },
        expect: { decision: 'deny' },
      },
    ],
  },
  {
    name: 'conditions',
    policy: `
version: 1
rules:
  - id: office-hours
    effect: allow
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: llm.model, name: "*" }]
    when: time.getHours("UTC") >= 8 && time.getHours("UTC") < 18
  - id: prod-header
    effect: allow
    subjects: [spiffe://example.org/deployer]
    resources: [{ kind: mcp.tool, name: deploy }]
    when: request.headers["x-env"] == "prod" && subject.segments[0] == "deployer"
  - id: token-budget
    effect: deny
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: llm.model, name: "*" }]
    when: attributes.maxTokens > 4000
  - id: peer-check
    effect: allow
    subjects: [spiffe://example.org/caller]
    resources: [{ kind: mcp.tool, name: peer_only }]
    when: has(peer.id) && peer.trustDomain == "example.org"
  - id: inbound-only
    effect: allow
    subjects: [spiffe://example.org/caller]
    resources: [{ kind: mcp.prompt, name: "*" }]
    when: request.direction == "inbound"
`,
    cases: [
      {
        name: 'a time condition that holds allows',
        subject: 'spiffe://example.org/a',
        resource: { kind: 'llm.model', name: 'gpt-4o' },
        context: { attributes: { maxTokens: 100 } },
        expect: { decision: 'allow', ruleId: 'office-hours' },
      },
      {
        name: 'a time condition that does not hold denies',
        subject: 'spiffe://example.org/a',
        resource: { kind: 'llm.model', name: 'gpt-4o' },
        context: { time: '2026-11-30T20:00:00Z', attributes: { maxTokens: 100 } },
        expect: { decision: 'deny' },
      },
      {
        name: 'a deny condition on an attribute denies when it holds',
        subject: 'spiffe://example.org/a',
        resource: { kind: 'llm.model', name: 'gpt-4o' },
        context: { attributes: { maxTokens: 8000 } },
        expect: { decision: 'deny', ruleId: 'token-budget' },
      },
      {
        name: 'a deny condition that fails at run time (missing attribute) denies and says so',
        subject: 'spiffe://example.org/a',
        resource: { kind: 'llm.model', name: 'gpt-4o' },
        expect: { decision: 'deny', ruleId: 'token-budget', conditionError: 'token-budget' },
      },
      {
        name: 'a header condition that holds allows',
        subject: 'spiffe://example.org/deployer',
        resource: { kind: 'mcp.tool', name: 'deploy' },
        context: { headers: { 'x-env': 'prod' } },
        expect: { decision: 'allow', ruleId: 'prod-header' },
      },
      {
        name: 'a header condition with another value denies',
        subject: 'spiffe://example.org/deployer',
        resource: { kind: 'mcp.tool', name: 'deploy' },
        context: { headers: { 'x-env': 'dev' } },
        expect: { decision: 'deny' },
      },
      {
        name: 'an allow condition that fails at run time (missing header) never allows and says so',
        subject: 'spiffe://example.org/deployer',
        resource: { kind: 'mcp.tool', name: 'deploy' },
        expect: { decision: 'deny', conditionError: 'prod-header' },
      },
      {
        name: 'a condition on the verified peer allows',
        subject: 'spiffe://example.org/caller',
        peer: 'spiffe://example.org/server',
        resource: { kind: 'mcp.tool', name: 'peer_only' },
        expect: { decision: 'allow', ruleId: 'peer-check' },
      },
      {
        name: 'a peer condition without a peer denies',
        subject: 'spiffe://example.org/caller',
        resource: { kind: 'mcp.tool', name: 'peer_only' },
        expect: { decision: 'deny' },
      },
      {
        name: 'a direction condition allows inbound',
        subject: 'spiffe://example.org/caller',
        resource: { kind: 'mcp.prompt', name: 'p' },
        context: { direction: 'inbound' },
        expect: { decision: 'allow', ruleId: 'inbound-only' },
      },
      {
        name: 'a direction condition denies outbound',
        subject: 'spiffe://example.org/caller',
        resource: { kind: 'mcp.prompt', name: 'p' },
        context: { direction: 'outbound' },
        expect: { decision: 'deny' },
      },
    ],
  },
  {
    name: 'audit mode per rule',
    policy: `
version: 1
mode: enforce
rules:
  - id: all-tools
    effect: allow
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: mcp.tool, name: "*" }]
  - id: trial-deny-shell
    effect: deny
    mode: audit
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: mcp.tool, name: shell }]
  - id: deny-rm
    effect: deny
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: mcp.tool, name: rm }]
`,
    cases: [
      {
        name: 'an audit-mode deny lets the request through and records the rule',
        subject: 'spiffe://example.org/a',
        resource: { kind: 'mcp.tool', name: 'shell' },
        expect: { decision: 'allow', ruleId: 'trial-deny-shell', mode: 'audit', wouldDeny: true },
      },
      {
        name: 'an enforced deny in the same policy still denies',
        subject: 'spiffe://example.org/a',
        resource: { kind: 'mcp.tool', name: 'rm' },
        expect: { decision: 'deny', ruleId: 'deny-rm', mode: 'enforce' },
      },
      {
        name: 'an allowed request is not affected by audit rules',
        subject: 'spiffe://example.org/a',
        resource: { kind: 'mcp.tool', name: 'ls' },
        expect: { decision: 'allow', ruleId: 'all-tools', mode: 'enforce' },
      },
      {
        name: 'the default deny is enforced in an enforce policy',
        subject: 'spiffe://other.org/a',
        resource: { kind: 'mcp.tool', name: 'shell' },
        expect: { decision: 'deny', mode: 'enforce' },
      },
    ],
  },
  {
    name: 'audit mode for the whole policy',
    policy: `
version: 1
mode: audit
rules:
  - id: reads
    effect: allow
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: http.route, methods: [GET], path: /** }]
  - id: no-admin
    effect: deny
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: http.route, path: /admin/** }]
  - id: no-delete-enforced
    effect: deny
    mode: enforce
    subjects: [{ trustDomain: example.org }]
    resources: [{ kind: http.route, methods: [DELETE], path: /** }]
`,
    cases: [
      {
        name: 'a deny rule is not enforced in an audit policy',
        subject: 'spiffe://example.org/a',
        resource: route('GET', '/admin/x'),
        expect: { decision: 'allow', ruleId: 'no-admin', mode: 'audit', wouldDeny: true },
      },
      {
        name: 'the default deny is not enforced in an audit policy',
        subject: 'spiffe://example.org/a',
        resource: route('POST', '/x'),
        expect: { decision: 'allow', mode: 'audit', wouldDeny: true },
      },
      {
        name: 'with no rule allowing it, the audited deny rule that matched is the one named',
        subject: 'spiffe://example.org/a',
        resource: route('POST', '/admin/x'),
        expect: { decision: 'allow', ruleId: 'no-admin', mode: 'audit', wouldDeny: true },
      },
      {
        name: 'a rule marked enforce is enforced in an audit policy',
        subject: 'spiffe://example.org/a',
        resource: route('DELETE', '/x'),
        expect: { decision: 'deny', ruleId: 'no-delete-enforced', mode: 'enforce' },
      },
      {
        name: 'an allowed request in an audit policy is a plain allow',
        subject: 'spiffe://example.org/a',
        resource: route('GET', '/x'),
        expect: { decision: 'allow', ruleId: 'reads', mode: 'enforce' },
      },
    ],
  },
  {
    name: 'an empty policy',
    policy: `
version: 1
rules: []
`,
    cases: [
      {
        name: 'denies everything',
        subject: 'spiffe://example.org/a',
        resource: route('GET', '/'),
        expect: { decision: 'deny', mode: 'enforce' },
      },
    ],
  },
]
