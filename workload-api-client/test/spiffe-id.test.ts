import t from 'tap'
import { SpiffeId, TrustDomain } from '../src/index.ts'

t.test('[C15] parser rejects what the SPIFFE ID grammar forbids', async (t) => {
  const cases: Array<[string, string]> = [
    ['', 'EMPTY'],
    ['SPIFFE://example.org/a', 'BAD_SCHEME'],
    ['spiffe:/example.org/a', 'BAD_SCHEME'],
    ['https://example.org/a', 'BAD_SCHEME'],
    ['spiffe://Example.org/a', 'BAD_TRUST_DOMAIN_CHAR'],
    ['spiffe://example.org:8443/a', 'BAD_TRUST_DOMAIN_CHAR'],
    ['spiffe://user@example.org/a', 'BAD_TRUST_DOMAIN_CHAR'],
    ['spiffe://example.org?x=1', 'BAD_TRUST_DOMAIN_CHAR'],
    ['spiffe://example.org#f', 'BAD_TRUST_DOMAIN_CHAR'],
    ['spiffe://ex%41mple.org/a', 'BAD_TRUST_DOMAIN_CHAR'],
    ['spiffe://', 'MISSING_TRUST_DOMAIN'],
    ['spiffe:///path', 'MISSING_TRUST_DOMAIN'],
    ['spiffe://example.org/a?x=1', 'BAD_PATH_CHAR'],
    ['spiffe://example.org/a#frag', 'BAD_PATH_CHAR'],
    ['spiffe://example.org/a%2Fb', 'BAD_PATH_CHAR'],
    ['spiffe://example.org/a:b', 'BAD_PATH_CHAR'],
    ['spiffe://example.org/caf\u00e9', 'BAD_PATH_CHAR'],
    ['spiffe://example.org//a', 'EMPTY_SEGMENT'],
    ['spiffe://example.org/a//b', 'EMPTY_SEGMENT'],
    ['spiffe://example.org/./a', 'DOT_SEGMENT'],
    ['spiffe://example.org/a/.', 'DOT_SEGMENT'],
    ['spiffe://example.org/a/../b', 'DOT_SEGMENT'],
    ['spiffe://example.org/', 'TRAILING_SLASH'],
    ['spiffe://example.org/a/', 'TRAILING_SLASH'],
  ]
  for (const [input, reason] of cases) {
    t.throws(() => SpiffeId.parse(input), { code: 'SPIFFE_ID_INVALID', reason }, JSON.stringify(input))
    t.equal(SpiffeId.tryParse(input), undefined)
  }
})

t.test('[C15] parser accepts uppercase paths and the bare trust domain ID', async (t) => {
  for (const input of [
    'spiffe://example.org',
    'spiffe://example.org/Agents/A-1_x.y',
    'spiffe://1.2.3.4/a',
    'spiffe://a/...',
  ]) {
    const id = SpiffeId.parse(input)
    t.equal(id.toString(), input)
  }
  const id = SpiffeId.parse('spiffe://example.org/ns/prod/sa/agent')
  t.equal(id.trustDomain.name, 'example.org')
  t.equal(id.path, '/ns/prod/sa/agent')
  t.same(id.segments, ['ns', 'prod', 'sa', 'agent'])
  t.equal(id.isRoot, false)
  t.equal(SpiffeId.parse('spiffe://example.org').isRoot, true)
})

t.test('[C16] dot-dot is rejected, never resolved', async (t) => {
  t.throws(() => SpiffeId.parse('spiffe://td/a/../admin'), {
    code: 'SPIFFE_ID_INVALID',
    reason: 'DOT_SEGMENT',
  })
})

t.test('[C17] length limits: 2048-byte IDs and 255-byte trust domains', async (t) => {
  const td = 'example.org'
  const prefix = `spiffe://${td}/`
  const max = prefix + 'a'.repeat(2048 - prefix.length)
  t.equal(max.length, 2048)
  t.equal(SpiffeId.parse(max).toString(), max)
  t.throws(() => SpiffeId.parse(`${max}b`), { code: 'SPIFFE_ID_INVALID', reason: 'TOO_LONG' })
  const longTd = 'a'.repeat(255)
  t.equal(SpiffeId.parse(`spiffe://${longTd}/x`).trustDomain.name, longTd)
  t.throws(() => SpiffeId.parse(`spiffe://${longTd}a/x`), { code: 'SPIFFE_ID_INVALID', reason: 'TOO_LONG' })
})

t.test('trust domains parse from a bare name or an ID, never from a workload ID', async (t) => {
  t.equal(TrustDomain.parse('example.org').name, 'example.org')
  t.equal(TrustDomain.parse('spiffe://example.org').name, 'example.org')
  t.equal(TrustDomain.parse('example.org').idString, 'spiffe://example.org')
  t.throws(() => TrustDomain.parse('spiffe://example.org/wl'), { code: 'SPIFFE_ID_INVALID' })
  t.throws(() => TrustDomain.parse('Example.org'), {
    code: 'SPIFFE_ID_INVALID',
    reason: 'BAD_TRUST_DOMAIN_CHAR',
  })
  t.throws(() => TrustDomain.parse(''), { code: 'SPIFFE_ID_INVALID', reason: 'EMPTY' })
  t.throws(() => TrustDomain.parse('td:443'), { code: 'SPIFFE_ID_INVALID', reason: 'BAD_TRUST_DOMAIN_CHAR' })
})

t.test('fromPath and fromSegments validate what they build', async (t) => {
  const td = TrustDomain.parse('example.org')
  t.equal(SpiffeId.fromPath(td, '/a/b').toString(), 'spiffe://example.org/a/b')
  t.equal(SpiffeId.fromSegments(td, 'a', 'b').toString(), 'spiffe://example.org/a/b')
  t.equal(SpiffeId.fromSegments(td).toString(), 'spiffe://example.org')
  t.throws(() => SpiffeId.fromPath(td, 'a'), { code: 'SPIFFE_ID_INVALID', reason: 'NO_LEADING_SLASH' })
  t.throws(() => SpiffeId.fromSegments(td, 'a/b'), { code: 'SPIFFE_ID_INVALID', reason: 'BAD_PATH_CHAR' })
  t.throws(() => SpiffeId.fromSegments(td, '..'), { code: 'SPIFFE_ID_INVALID', reason: 'DOT_SEGMENT' })
  t.ok(SpiffeId.parse('spiffe://example.org/a').equals(SpiffeId.fromPath(td, '/a')))
})

// A refused ID is often a peer's URI SAN or a token's `sub`: bytes someone else chose, which end up in logs
// and audit records through the error message. The message quotes them escaped and cut short.
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return true
  }
  return false
}

t.test('error messages escape the input and stay short whatever the input', async (t) => {
  const hostile = [
    'spiffe://example.org/a\nlevel=info msg="forged"',
    'spiffe://exa\r\nmple.org/a',
    `spiffe://example.org/${'a'.repeat(2000)}/%`,
    `spiffe://example.org/${'a/'.repeat(900)}`,
    `spiffe://${'a'.repeat(250)}\u0007/a`,
    `spiffe://example.org//${'b'.repeat(2000)}`,
    `spiffe://example.org/./${'b'.repeat(2000)}`,
    `spiffe://${'a'.repeat(300)}/x`,
    `spiffe://${'A'.repeat(255)}/x`,
  ]
  for (const input of hostile) {
    const err = SpiffeId.tryParseResult(input)
    t.ok(err instanceof Error, `refused: ${JSON.stringify(input.slice(0, 40))}`)
    const message = (err as Error).message
    t.notOk(hasControl(message), 'no control character reaches the message')
    t.ok(message.length <= 400, `message is ${message.length} characters`)
  }
  for (const input of ['exa\nmple.org', `${'a'.repeat(250)}\u0000`]) {
    const message = (() => {
      try {
        TrustDomain.parse(input)
      } catch (err) {
        return (err as Error).message
      }
      return ''
    })()
    t.notOk(hasControl(message), 'trust domain messages too')
  }
})
