// The TLS settings of the config file: profiles, handshake timeouts, and
// where each may be set. A setting can only tighten what the default allows.
import t from 'tap'
import { type ConfigError, parseConfig } from '../src/config/index.ts'
import { tlsParameters } from '../src/tls/profiles.ts'

const LISTENERS = `inbound:
  - name: public
    address: "0.0.0.0:15443"
    forwardTo: "http://127.0.0.1:8080"
    authorize: { any: true }
  - name: mesh
    address: "0.0.0.0:15444"
    forwardTo: "http://127.0.0.1:8080"
    authorize: { any: true }
    tls: { profile: modern, handshakeTimeout: 3s }
outbound:
  - name: egress
    address: "127.0.0.1:15001"
    routes: [{ match: { host: peer }, upstream: peer }, { upstream: api }]
upstreams:
  peer: { url: "https://peer:15443", spiffe: { any: true }, tls: { profile: modern } }
  api: { url: "https://api.example" }
`

function problems(text: string): string[] {
  try {
    parseConfig(text, 'test.yaml', {})
  } catch (err) {
    if ((err as ConfigError).code !== 'SVD_CONFIG_INVALID') throw err
    return (err as ConfigError).issues.map((i) => i.path)
  }
  throw new Error('expected a ConfigError')
}

t.test('defaults: intermediate profile, a 10 s handshake timeout, a 30 s startup timeout', async (t) => {
  const c = parseConfig(LISTENERS, 'x.yaml', {})
  t.same(c.tls, { minVersion: 'TLSv1.2', profile: 'intermediate', handshakeTimeout: 10_000 })
  t.same(c.inbound[0]?.tls, { profile: 'intermediate', handshakeTimeout: 10_000 })
  t.same(c.inbound[1]?.tls, { profile: 'modern', handshakeTimeout: 3000 }, 'a listener’s own tls wins')
  t.equal(c.upstreams.get('peer')?.tlsProfile, 'modern')
  t.equal(c.upstreams.get('api')?.tlsProfile, 'intermediate')
  t.equal(c.workloadApi.startupTimeout, 30_000)
})

t.test('the global tls block sets every listener and upstream that says nothing', async (t) => {
  const c = parseConfig(`${LISTENERS}tls: { profile: modern, handshakeTimeout: 2s }\n`, 'x.yaml', {})
  t.same(c.inbound[0]?.tls, { profile: 'modern', handshakeTimeout: 2000 })
  t.equal(c.upstreams.get('api')?.tlsProfile, 'modern')
})

t.test('bad values are refused with their field', async (t) => {
  t.same(problems(`${LISTENERS}tls: { profile: old }\n`), ['tls.profile'])
  t.same(
    problems(`${LISTENERS}tls: { handshakeTimeout: 0 }\n`),
    ['tls.handshakeTimeout'],
    '0 would mean never',
  )
  t.same(
    problems(`${LISTENERS}tls: { handshakeTimeout: 5m }\n`),
    ['tls.handshakeTimeout'],
    'seconds, not minutes',
  )
  t.same(problems(`${LISTENERS}tls: { minVersion: TLSv1.1 }\n`), ['tls.minVersion'])
  t.same(
    problems(LISTENERS.replace('tls: { profile: modern, handshakeTimeout: 3s }', 'tls: { ciphers: ALL }')),
    ['inbound[1].tls.ciphers'],
    'no cipher list of one’s own',
  )
  t.same(
    problems(
      LISTENERS.replace(
        'api: { url: "https://api.example" }',
        'api: { url: "http://127.0.0.1:1", allowPlaintext: true, tls: { profile: modern } }',
      ),
    ),
    ['upstreams.api.tls'],
    'TLS settings on a plaintext upstream mean nothing and are refused',
  )
})

t.test('profiles: minVersion raises a floor and never lowers one', async (t) => {
  t.match(tlsParameters('intermediate', 'TLSv1.2'), { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' })
  t.match(tlsParameters('intermediate', 'TLSv1.3'), { minVersion: 'TLSv1.3' })
  t.match(tlsParameters('modern', 'TLSv1.2'), { minVersion: 'TLSv1.3' })
  for (const p of [tlsParameters('intermediate', 'TLSv1.2'), tlsParameters('modern', 'TLSv1.2')]) {
    const suites = p.ciphers.split(':')
    t.ok(
      suites.every(
        (s) => s.startsWith('TLS_') || (s.startsWith('ECDHE-') && /GCM|CHACHA20-POLY1305/.test(s)),
      ),
      `${p.profile}: TLS 1.3 suites and ECDHE with AEAD only`,
    )
  }
})
