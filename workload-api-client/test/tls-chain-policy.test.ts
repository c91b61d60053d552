// The checks OpenSSL made that the library's path validation does not, on chains built directly (no sockets):
// every reason, for the purpose it applies to, and the SPIRE shapes that must pass.
import { DevCa } from '@svidecar/certs'
import t from 'tap'
import { checkChainPolicy, isSpiffeError, type PeerPurpose, SpiffeId } from 'workload-api-client'

const AGENT = 'spiffe://example.org/agent'

function reasonOf(ca: DevCa, svid: ReturnType<DevCa['issueX509Svid']>, purpose: PeerPurpose = 'client') {
  try {
    checkChainPolicy([...svid.certificates, ca.root], purpose, SpiffeId.parse(svid.spiffeId))
    return 'accepted'
  } catch (err) {
    return isSpiffeError(err, 'SPIFFE_CHAIN_UNVERIFIED') ? err.reason : String(err)
  }
}

t.test('SPIRE-shaped chains pass for both purposes', async (t) => {
  for (const depth of [0, 1, 2]) {
    const ca = DevCa.create({ trustDomain: 'example.org', intermediates: depth })
    const svid = ca.issueX509Svid({ spiffeId: AGENT })
    t.equal(reasonOf(ca, svid, 'client'), 'accepted', `${depth} intermediate(s), client`)
    t.equal(reasonOf(ca, svid, 'server'), 'accepted', `${depth} intermediate(s), server`)
  }
  const ca = DevCa.create({ trustDomain: 'example.org', intermediates: 1, keyType: 'ec-p384' })
  t.equal(
    reasonOf(ca, ca.issueX509Svid({ spiffeId: AGENT, keyType: 'rsa-2048' })),
    'accepted',
    'RSA-2048, P-384',
  )
  t.equal(reasonOf(ca, ca.issueX509Svid({ spiffeId: AGENT, extKeyUsage: null })), 'accepted', 'no EKU at all')
})

t.test('extended key usage must allow the purpose', async (t) => {
  const ca = DevCa.create({ trustDomain: 'example.org', intermediates: 1 })
  t.equal(
    reasonOf(ca, ca.issueX509Svid({ spiffeId: AGENT, extKeyUsage: ['serverAuth'] }), 'client'),
    'EKU_MISMATCH',
  )
  t.equal(
    reasonOf(ca, ca.issueX509Svid({ spiffeId: AGENT, extKeyUsage: ['clientAuth'] }), 'server'),
    'EKU_MISMATCH',
  )
  t.equal(
    reasonOf(ca, ca.issueX509Svid({ spiffeId: AGENT, extKeyUsage: ['serverAuth'] }), 'server'),
    'accepted',
  )
})

t.test('the leaf key usage must fit TLS', async (t) => {
  const ca = DevCa.create({ trustDomain: 'example.org' })
  const encipherOnly = ca.issueX509Svid({
    spiffeId: AGENT,
    keyUsage: { digitalSignature: false, keyAgreement: false },
  })
  t.equal(reasonOf(ca, encipherOnly, 'client'), 'KEY_USAGE_MISMATCH')
  // OpenSSL's server purpose also allows keyEncipherment (RSA key exchange).
  t.equal(reasonOf(ca, encipherOnly, 'server'), 'accepted')
})

t.test('an issuer link OpenSSL would not make: authority key ID of another key', async (t) => {
  const ca = DevCa.create({ trustDomain: 'example.org', intermediates: 1 })
  const svid = ca.issueX509Svid({ spiffeId: AGENT, authorityKeyId: Buffer.alloc(20, 7) })
  t.equal(reasonOf(ca, svid), 'ISSUER_MISMATCH')
})

t.test('weak signatures and keys', async (t) => {
  const ca = DevCa.create({ trustDomain: 'example.org', intermediates: 1 })
  t.equal(reasonOf(ca, ca.issueX509Svid({ spiffeId: AGENT, sha1Signature: true })), 'WEAK_SIGNATURE')
  t.equal(reasonOf(ca, ca.issueX509Svid({ spiffeId: AGENT, keyType: 'rsa-1024' })), 'WEAK_KEY')
})

t.test('signing certificates’ SPIFFE IDs', async (t) => {
  const root = DevCa.create({ trustDomain: 'example.org' })
  const chainOf = (ca: DevCa, spiffeId = AGENT) => {
    try {
      checkChainPolicy(
        [...ca.issueX509Svid({ spiffeId }).certificates, root.root],
        'client',
        SpiffeId.parse(spiffeId),
      )
      return 'accepted'
    } catch (err) {
      return isSpiffeError(err, 'SPIFFE_CHAIN_UNVERIFIED') ? err.reason : String(err)
    }
  }
  t.equal(
    chainOf(root.createIntermediate({ trustDomain: 'partner.example' })),
    'SIGNER_TRUST_DOMAIN_MISMATCH',
  )
  t.equal(chainOf(root.createIntermediate({ uriSans: ['spiffe://example.org/ca'] })), 'SIGNER_SPIFFE_ID')
  t.equal(chainOf(root.createIntermediate({ uriSans: ['spiffe://Example.org'] })), 'SIGNER_SPIFFE_ID')
  t.equal(
    chainOf(root.createIntermediate({ uriSans: ['https://ca.example.com/'] })),
    'accepted',
    'a non-SPIFFE URI',
  )
  t.equal(chainOf(root.createIntermediate({ uriSans: [] })), 'accepted', 'no SAN')
  // A CA of one trust domain may sign another's intermediate; only the leaf's issuer must match the leaf.
  const nested = root.createIntermediate().createIntermediate({ trustDomain: 'partner.example' })
  t.equal(chainOf(nested, 'spiffe://partner.example/agent'), 'accepted')
  t.equal(chainOf(nested), 'SIGNER_TRUST_DOMAIN_MISMATCH')
})

t.test('a chain that passed is remembered per purpose and per exact chain, never beyond', async (t) => {
  const ca = DevCa.create({ trustDomain: 'example.org', intermediates: 1 })
  const svid = ca.issueX509Svid({ spiffeId: AGENT, extKeyUsage: ['serverAuth'] })
  const chain = [...svid.certificates, ca.root]
  const id = SpiffeId.parse(AGENT)
  const check = (c: typeof chain, purpose: PeerPurpose) => {
    try {
      checkChainPolicy(c, purpose, id)
      return 'accepted'
    } catch (err) {
      return isSpiffeError(err, 'SPIFFE_CHAIN_UNVERIFIED') ? err.reason : String(err)
    }
  }
  t.equal(check(chain, 'server'), 'accepted')
  t.equal(check(chain, 'server'), 'accepted', 'again, from memory')
  t.equal(check(chain, 'client'), 'EKU_MISMATCH', 'passing as a server says nothing about a client')
  // The same leaf under an intermediate that did not sign it: a different chain, checked in full.
  const stranger = DevCa.create({ trustDomain: 'example.org', intermediates: 1 })
  const spliced = [chain[0], stranger.issueX509Svid({ spiffeId: AGENT }).certificates[1], stranger.root]
  t.equal(check(spliced as typeof chain, 'server'), 'ISSUER_MISMATCH')
})
