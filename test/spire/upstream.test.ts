// SPIRE with an UpstreamAuthority (here `disk`): SPIRE's CA is an intermediate under an upstream root, the agent
// hands out leaf + intermediate and the bundle holds the upstream root, as in production deployments with
// disk, cert-manager, Vault or AWS PCA. Two sidecars with such SVIDs must accept each other both ways.
import { X509Certificate } from 'node:crypto'
import { connect, type DetailedPeerCertificate, type TLSSocket } from 'node:tls'
import t from 'tap'
import { AGENT, MCP, startSidecars } from '../../sidecar/test/helpers/mesh.ts'
import { Spire } from '../harness/spire.ts'
import { requireSpire } from '../harness/spire-available.ts'

/** What a client socket was sent, leaf first: getPeerCertificate(true) links it, then our root (dropped). */
function presented(socket: TLSSocket): Buffer[] {
  const out: Buffer[] = []
  let cert: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true)
  while (cert?.raw && out.length < 8) {
    if (cert.issuerCertificate === cert) break
    out.push(cert.raw)
    cert = cert.issuerCertificate
  }
  return out
}

function pemCerts(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map(
    (p) => new X509Certificate(p),
  )
}

if (requireSpire(t)) {
  const spire = await Spire.start({
    upstreamAuthority: 'disk',
    entries: [
      { spiffeId: AGENT, hint: 'agent' },
      { spiffeId: MCP, hint: 'mcp' },
    ],
  })
  t.teardown(() => spire.close())

  t.test('spire: with the disk UpstreamAuthority the agent serves leaf + SPIRE intermediate', async (t) => {
    const mesh = await startSidecars(t, spire.endpoint, { readyTimeoutMs: 30_000 })
    const snapshot = mesh.agentSidecar.identity.require()
    const chain = pemCerts(snapshot.certChainPem)
    t.equal(chain.length, 2, 'x509_svid holds the leaf, then SPIRE’s intermediate')
    const [leaf, intermediate] = chain as [X509Certificate, X509Certificate]
    const upstream = new X509Certificate(spire.upstreamRootPem ?? '')
    t.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey), 'the leaf is signed by it')
    t.equal(intermediate.ca, true)
    t.ok(
      intermediate.checkIssued(upstream) && intermediate.verify(upstream.publicKey),
      'which the upstream root signed',
    )
    t.ok(
      snapshot.allRootsPem.some((pem) => new X509Certificate(pem).fingerprint256 === upstream.fingerprint256),
      'the bundle holds the upstream root',
    )
    t.notOk(
      snapshot.allRootsPem.some(
        (pem) => new X509Certificate(pem).fingerprint256 === intermediate.fingerprint256,
      ),
      'and not the intermediate',
    )
  })

  t.test(
    'spire: two sidecars with SVIDs through SPIRE’s intermediate accept each other both ways',
    async (t) => {
      const mesh = await startSidecars(t, spire.endpoint, { readyTimeoutMs: 30_000 })
      // Outbound: the agent's sidecar verified the server sidecar's chain; inbound: the server sidecar verified
      // the agent sidecar's chain and handed the app its ID.
      const res = await fetch(`${mesh.outboundUrl}/anything`)
      t.equal(res.status, 200, `answered ${res.status} ${res.headers.get('x-svidecar-error') ?? ''}`)
      const body = (await res.json()) as { peer?: string }
      t.equal(body.peer, AGENT, 'the app sees the agent’s SPIRE-issued identity')

      // The inbound listener presents its intermediate too.
      const agent = mesh.agentSidecar.identity.require()
      const socket: TLSSocket = connect({
        host: '127.0.0.1',
        port: mesh.inboundPort,
        key: agent.keyPem,
        cert: agent.certChainPem,
        ca: agent.allRootsPem,
        checkServerIdentity: () => undefined,
      })
      t.teardown(() => socket.destroy())
      await new Promise((resolve, reject) => {
        socket.once('secureConnect', resolve)
        socket.once('error', reject)
      })
      const chain = presented(socket)
      t.equal(chain.length, 2, 'the server sidecar sent leaf + intermediate')
      t.equal(new X509Certificate(chain[0] as Buffer).subjectAltName, `URI:${MCP}`)
    },
  )
}
