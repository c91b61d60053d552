// "To a client the dev Workload API is indistinguishable from SPIRE": SPIRE's
// own Go client (spire-agent api ...) talks to the dev server written here.
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { DevWorkloadApi } from '@svidecar/certs'
import t from 'tap'
import { requireSpire } from '../harness/spire-available.ts'
import { spireBinaries } from '../harness/spire-install.ts'

function agentCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(spireBinaries().agentBin, ['api', ...args], { timeout: 15_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    )
  })
}

interface X509Json {
  svids: { spiffe_id: string; hint: string; x509_svid: string; bundle: string }[]
}

if (requireSpire(t)) {
  t.test('spire: SPIRE’s Go client fetches SVIDs, bundles and JWTs from the dev Workload API', async (t) => {
    const api = await DevWorkloadApi.start({
      workloads: [
        { spiffeId: 'spiffe://example.org/agent/a', hint: 'a' },
        { spiffeId: 'spiffe://example.org/agent/b', hint: 'b' },
      ],
    })
    t.teardown(() => api.close())
    const socket = ['-socketPath', api.socketPath]

    const x509 = await agentCli(['fetch', 'x509', ...socket, '-output', 'json'])
    t.equal(x509.code, 0, x509.stderr)
    const parsed = JSON.parse(x509.stdout) as X509Json
    t.same(parsed.svids.map((s) => [s.spiffe_id, s.hint]).sort(), [
      ['spiffe://example.org/agent/a', 'a'],
      ['spiffe://example.org/agent/b', 'b'],
    ])
    const leaf = new X509Certificate(Buffer.from(parsed.svids[0]?.x509_svid ?? '', 'base64'))
    const root = new X509Certificate(Buffer.from(parsed.svids[0]?.bundle ?? '', 'base64'))
    t.ok(leaf.verify(root.publicKey), 'the leaf chains to the bundle the Go client received')

    const jwt = await agentCli(['fetch', 'jwt', ...socket, '-audience', 'tools', '-output', 'json'])
    t.equal(jwt.code, 0, jwt.stderr)
    const tokens = JSON.parse(jwt.stdout) as [{ svids: { spiffe_id: string; svid: string }[] }, unknown]
    const token = tokens[0].svids.find((s) => s.spiffe_id === 'spiffe://example.org/agent/a')?.svid ?? ''
    t.ok(token.split('.').length === 3, 'a compact JWS')

    const valid = await agentCli(['validate', 'jwt', ...socket, '-audience', 'tools', '-svid', token])
    t.equal(valid.code, 0, 'ValidateJWTSVID accepts the token for its audience')
    t.match(valid.stdout, 'spiffe://example.org/agent/a')
    const wrong = await agentCli(['validate', 'jwt', ...socket, '-audience', 'other', '-svid', token])
    t.not(wrong.code, 0, 'and refuses it for another')

    api.denyAll()
    const denied = await agentCli(['fetch', 'x509', ...socket, '-timeout', '2s'])
    t.not(denied.code, 0, 'no identity: the Go client sees PERMISSION_DENIED')
    t.match(denied.stderr + denied.stdout, /PermissionDenied|no identity issued/)
  })
}
