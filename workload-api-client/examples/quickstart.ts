import { matchMemberOf, TrustDomain, verifyX509Svid, X509Source } from 'workload-api-client'

// Connects to SPIFFE_ENDPOINT_SOCKET and waits for the first X.509-SVID.
const source = await X509Source.create({ timeoutMs: 10_000 })
const svid = source.getX509Svid()
console.log(`I am ${svid.id}, certificate valid until ${svid.notAfter.toISOString()}`)

// Verify a peer's chain against the bundle of the peer's own trust domain,
// then authorize its SPIFFE ID.
const { id } = verifyX509Svid(svid.certificates, source)
const sameTrustDomain = matchMemberOf(TrustDomain.parse('example.org'))
console.log(`peer ${id} ${sameTrustDomain(id) ? 'is' : 'is not'} a member of example.org`)

// Rotations arrive as updates; TLS contexts are rebuilt from them.
source.onUpdate((s) => console.log(`SVID now ${s.svid?.id} serial ${s.svid?.serialNumber}`))
source.close()
