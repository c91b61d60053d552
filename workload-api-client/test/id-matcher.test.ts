import t, { type Test } from 'tap'
import {
  type IdMatcher,
  matchAny,
  matchAnyOf,
  matchId,
  matchMemberOf,
  matchOneOf,
  matchPathPrefix,
  matchPattern,
  SpiffeId,
} from '../src/index.ts'

function check(t: Test, matcher: IdMatcher, yes: string[], no: string[]): void {
  for (const id of yes) t.equal(matcher(SpiffeId.parse(id)), true, `${matcher.description} matches ${id}`)
  for (const id of no) t.equal(matcher(SpiffeId.parse(id)), false, `${matcher.description} rejects ${id}`)
}

t.test('[C27] an exact-ID rule matches only that ID; paths are case-sensitive', async (t) => {
  check(
    t,
    matchId('spiffe://td/agents/a'),
    ['spiffe://td/agents/a'],
    ['spiffe://td/agents/A', 'spiffe://td/agents/a/b', 'spiffe://td/agents', 'spiffe://other.td/agents/a'],
  )
})

t.test('one-of matches the listed IDs only', async (t) => {
  check(
    t,
    matchOneOf('spiffe://td/a', 'spiffe://td/b'),
    ['spiffe://td/a', 'spiffe://td/b'],
    ['spiffe://td/c', 'spiffe://td/a/b'],
  )
})

t.test('member of a trust domain', async (t) => {
  check(
    t,
    matchMemberOf('td'),
    ['spiffe://td', 'spiffe://td/x/y'],
    ['spiffe://td.example/x', 'spiffe://other.td/x'],
  )
})

t.test('[C28] [C29] path prefix matches at segment boundaries within its trust domain', async (t) => {
  check(
    t,
    matchPathPrefix('spiffe://td/agents'),
    ['spiffe://td/agents', 'spiffe://td/agents/x', 'spiffe://td/agents/x/y'],
    [
      'spiffe://td/agents-admin',
      'spiffe://td/agentsx',
      'spiffe://td/agent',
      'spiffe://other.td/agents/x',
      'spiffe://td',
    ],
  )
  check(
    t,
    matchPathPrefix('spiffe://td'),
    ['spiffe://td', 'spiffe://td/anything/at/all'],
    ['spiffe://other.td/x'],
  )
})

t.test('patterns: * is exactly one segment, ** any depth, the trust domain literal', async (t) => {
  check(
    t,
    matchPattern('spiffe://td/agents/*'),
    ['spiffe://td/agents/a', 'spiffe://td/agents/b'],
    ['spiffe://td/agents', 'spiffe://td/agents/a/b', 'spiffe://td/agentsx/a', 'spiffe://other.td/agents/a'],
  )
  check(
    t,
    matchPattern('spiffe://td/agents/**'),
    ['spiffe://td/agents', 'spiffe://td/agents/a', 'spiffe://td/agents/a/b/c'],
    ['spiffe://td/agents-admin/a', 'spiffe://td/other', 'spiffe://other.td/agents/a'],
  )
  check(
    t,
    matchPattern('spiffe://td/ns/*/sa/**'),
    ['spiffe://td/ns/prod/sa', 'spiffe://td/ns/prod/sa/agent/7'],
    ['spiffe://td/ns/sa', 'spiffe://td/ns/prod/x/sa'],
  )
  check(
    t,
    matchPattern('spiffe://td/exact'),
    ['spiffe://td/exact'],
    ['spiffe://td/exact/x', 'spiffe://td/exac'],
  )
  check(t, matchAny(), ['spiffe://td/x', 'spiffe://other.td'], [])
})

t.test('malformed patterns are refused with SPIFFE_MATCHER_INVALID', async (t) => {
  for (const bad of [
    'https://td/a',
    'spiffe://*/a',
    'spiffe://TD/a',
    'spiffe://td/a*',
    'spiffe://td/**/**',
    'spiffe://td/a//b',
    'spiffe://td/a/',
    'spiffe://td/../a',
    'spiffe://td/a%20b',
  ]) {
    t.throws(() => matchPattern(bad), { code: 'SPIFFE_MATCHER_INVALID' }, bad)
  }
  t.throws(() => matchId('spiffe://td/a/'), { code: 'SPIFFE_ID_INVALID' })
})

t.test('any-of: a union of matchers, described by its parts', async (t) => {
  const m = matchAnyOf(matchPathPrefix('spiffe://example.org/ns/agents'), matchMemberOf('partner.example'))
  check(
    t,
    m,
    ['spiffe://example.org/ns/agents', 'spiffe://example.org/ns/agents/sa/a', 'spiffe://partner.example/x'],
    [
      'spiffe://example.org/ns/agents-admin',
      'spiffe://example.org/ns/tools/sa/a',
      'spiffe://other.example/x',
    ],
  )
  t.equal(
    m.description,
    'any of (path prefix spiffe://example.org/ns/agents; member of partner.example)',
    'a refusal can say everything that was allowed',
  )
  const nested = matchAnyOf(m, matchId('spiffe://example.org/admin'))
  check(
    t,
    nested,
    ['spiffe://example.org/admin', 'spiffe://partner.example/y'],
    ['spiffe://example.org/other'],
  )
  const single = matchPattern('spiffe://td/a/*')
  t.equal(matchAnyOf(single), single, 'one matcher is itself')
  t.throws(() => matchAnyOf(), { code: 'SPIFFE_MATCHER_INVALID' }, 'an empty union would refuse everyone')
  t.throws(() => matchAnyOf('spiffe://td/a' as unknown as IdMatcher), { code: 'SPIFFE_MATCHER_INVALID' })
})

// The peer's ID is the input here (a federated trust domain mints any path it likes, up to 2048 bytes, about a
// thousand segments). Matching `**` by plain recursion costs segments^(number of `**`): with six of them
// against a 1,000-segment ID that never returns. This asks only that the match finishes, not how fast.
t.test('patterns with many ** finish against IDs of a thousand segments', async (t) => {
  const long = SpiffeId.parse(`spiffe://td/${Array(1000).fill('a').join('/')}`)
  const many = 'spiffe://td/**/a/**/a/**/a/**/a/**/a/**'
  t.equal(matchPattern(`${many}/b`)(long), false, 'no final b: every split is tried, and all fail')
  t.equal(matchPattern(many)(long), true)
  t.equal(matchPattern('spiffe://td/**/*/a/**/*/*/b/**')(long), false)
})

// The same answers as a regular expression that states the pattern language (`*` one segment, `**` zero or
// more), over every small ID and pattern the alphabet makes.
t.test('pattern matching agrees with the regular-expression reading of the pattern language', async (t) => {
  const atoms = ['a', 'b', '*', '**']
  const patterns: string[][] = [[]]
  for (let len = 1; len <= 4; len++) {
    for (let n = 0; n < atoms.length ** len; n++) {
      const p: string[] = []
      for (let k = 0, v = n; k < len; k++, v = Math.floor(v / atoms.length))
        p.push(atoms[v % atoms.length] as string)
      patterns.push(p)
    }
  }
  const ids: string[][] = [[]]
  for (let len = 1; len <= 5; len++) {
    for (let n = 0; n < 2 ** len; n++) ids.push([...Array(len)].map((_, k) => ((n >> k) & 1 ? 'b' : 'a')))
  }
  let disagreements = 0
  let checked = 0
  for (const p of patterns) {
    // Plain IDs are matchId's business, and `**/**` is refused as redundant.
    if (!p.some((s) => s.includes('*')) || p.join('/').includes('**/**')) continue
    const matcher = matchPattern(`spiffe://td${p.map((s) => `/${s}`).join('')}`)
    const re = new RegExp(
      `^${p.map((s) => (s === '**' ? '(?:/[^/]+)*' : s === '*' ? '/[^/]+' : `/${s}`)).join('')}$`,
    )
    for (const segs of ids) {
      const path = segs.map((s) => `/${s}`).join('')
      checked++
      if (matcher(SpiffeId.parse(`spiffe://td${path}`)) !== re.test(path)) disagreements++
    }
  }
  t.ok(checked > 5000, `${checked} pattern and ID pairs`)
  t.equal(disagreements, 0)
})
