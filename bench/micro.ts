/**
 * Micro benchmarks of the per-handshake and per-request hot paths, one core
 * (the main thread), against a baseline that does the least possible work
 * on the same input (so the table shows what our checks add).
 *
 * Method: warm up, then 5 rounds of ~1 s each; report the median ops/s.
 * Run from the repository root: `npm run bench`.
 */

import { X509Certificate } from 'node:crypto'
import { cpus } from 'node:os'
import { DevCa, DevJwtIssuer } from '@svidecar/certs'
import {
  BundleSet,
  clearJwtSvidCache,
  clearX509Cache,
  JwtBundle,
  JwtSvid,
  matchMemberOf,
  matchPathPrefix,
  SpiffeId,
  TrustDomain,
  verifyX509Svid,
  X509Bundle,
  x509BundleSource,
} from 'workload-api-client'

interface Result {
  name: string
  opsPerSec: number
  target?: number
}

function bench(name: string, fn: () => unknown, target?: number): Result {
  // Warm-up lets the JIT settle before anything is measured.
  const warmEnd = performance.now() + 300
  while (performance.now() < warmEnd) for (let i = 0; i < 100; i++) fn()
  const rounds: number[] = []
  for (let r = 0; r < 5; r++) {
    let ops = 0
    const start = performance.now()
    const end = start + 1000
    let now = start
    while (now < end) {
      for (let i = 0; i < 100; i++) fn()
      ops += 100
      now = performance.now()
    }
    rounds.push((ops * 1000) / (now - start))
  }
  rounds.sort((a, b) => a - b)
  return { name, opsPerSec: rounds[2] as number, ...(target === undefined ? {} : { target }) }
}

const results: Result[] = []

// SPIFFE ID parse and match: what every authorization decision starts with.
const ID = 'spiffe://example.org/ns/prod/sa/agent-7'
const member = matchMemberOf('example.org')
const prefix = matchPathPrefix('spiffe://example.org/ns/prod')
results.push(bench('baseline: new URL(id)', () => new URL(ID)))
results.push(bench('SpiffeId.parse', () => SpiffeId.parse(ID), 1_000_000))
results.push(
  bench(
    'SpiffeId.parse + member-of + path-prefix match',
    () => {
      const id = SpiffeId.parse(ID)
      return member(id) && prefix(id)
    },
    1_000_000,
  ),
)

// X.509-SVID peer verification of leaf + intermediate, as on every inbound handshake.
const root = DevCa.create({ trustDomain: 'example.org' })
const intermediate = root.createIntermediate()
const svid = intermediate.issueX509Svid({ spiffeId: 'spiffe://example.org/agent' })
const chain = svid.certificates.map((c) => c.raw)
const bundles = x509BundleSource(
  new BundleSet([X509Bundle.fromAuthorities(TrustDomain.parse('example.org'), [root.certificate])]),
)
const leafX509 = new X509Certificate(chain[0] as Buffer)
const interX509 = new X509Certificate(chain[1] as Buffer)
results.push(
  bench(
    'baseline: node:crypto verify of the same two signatures',
    () => leafX509.verify(interX509.publicKey) && interX509.verify(root.certificate.publicKey),
  ),
)
results.push(
  bench(
    'verifyX509Svid, 2-cert chain, repeat peer (cache warm)',
    () => verifyX509Svid(chain, bundles),
    20_000,
  ),
)
results.push(
  bench('verifyX509Svid, 2-cert chain, cold (cache cleared each time)', () => {
    clearX509Cache()
    return verifyX509Svid(chain, bundles)
  }),
)

// JWT-SVID validation, as on every request that carries one.
const issuer = DevJwtIssuer.create({ trustDomain: 'example.org' })
const token = issuer.issue({ spiffeId: 'spiffe://example.org/agent', audience: 'mcp', ttlMs: 3_600_000 })
const jwtBundles = new BundleSet([
  JwtBundle.parseJwks(TrustDomain.parse('example.org'), JSON.stringify(issuer.jwks())),
])
const jwtSource = { getJwtBundleForTrustDomain: (td: TrustDomain) => jwtBundles.get(td) }
results.push(
  bench(
    'JwtSvid.parseAndValidate, ES256, repeat token (cache warm)',
    () => JwtSvid.parseAndValidate(token, jwtSource, 'mcp'),
    20_000,
  ),
)
results.push(
  bench('JwtSvid.parseAndValidate, ES256, cold (cache cleared each time)', () => {
    clearJwtSvidCache()
    return JwtSvid.parseAndValidate(token, jwtSource, 'mcp')
  }),
)

const fmt = (n: number) => Math.round(n).toLocaleString('en-US')
const lines = [
  `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}, one core, ${new Date().toISOString()}`,
  '',
  '| benchmark | ops/s | target | verdict |',
  '| --- | ---: | ---: | --- |',
  ...results.map(
    (r) =>
      `| ${r.name} | ${fmt(r.opsPerSec)} | ${r.target === undefined ? '' : fmt(r.target)} | ${
        r.target === undefined ? '' : r.opsPerSec >= r.target ? 'met' : '**missed**'
      } |`,
  ),
]
process.stdout.write(`${lines.join('\n')}\n`)
