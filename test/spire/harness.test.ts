// The harness itself, checked with SPIRE's own CLI so a client bug cannot hide a harness bug.
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Spire } from '../harness/spire.ts'
import { requireSpire } from '../harness/spire-available.ts'
import { spireBinaries } from '../harness/spire-install.ts'

function fetchX509(socketPath: string): Promise<{ code: number; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'fetch-'))
  return new Promise((resolve) => {
    execFile(
      spireBinaries().agentBin,
      ['api', 'fetch', 'x509', '-socketPath', socketPath, '-write', dir, '-timeout', '5s'],
      (err) => resolve({ code: err ? Number(err.code ?? 1) : 0, dir }),
    )
  })
}

function uriSan(pemPath: string): string | undefined {
  const cert = new X509Certificate(readFileSync(pemPath))
  return /URI:([^,\s]+)/.exec(cert.subjectAltName ?? '')?.[1]
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

if (requireSpire(t)) {
  t.test(
    'spire: server and agent come up, serve registered entries, survive a restart and go away cleanly',
    async (t) => {
      const spire = await Spire.start({
        entries: [
          { spiffeId: 'spiffe://example.org/agent/a', hint: 'a' },
          { spiffeId: 'spiffe://example.org/agent/b', hint: 'b' },
        ],
      })
      t.teardown(() => spire.close())

      const first = await fetchX509(spire.socketPath)
      t.teardown(() => rmSync(first.dir, { recursive: true, force: true }))
      if (!t.equal(first.code, 0, 'SPIRE CLI fetches X.509-SVIDs')) t.comment(spire.log('agent', 20))
      const ids = [uriSan(join(first.dir, 'svid.0.pem')), uriSan(join(first.dir, 'svid.1.pem'))].sort()
      t.same(ids, ['spiffe://example.org/agent/a', 'spiffe://example.org/agent/b'], 'both entries served')

      const entries = (await spire.listEntries()) as { spiffe_id?: { path?: string } }[]
      t.same(
        entries
          .map((e) => e.spiffe_id?.path)
          .filter((p) => p?.startsWith('/agent/'))
          .sort(),
        ['/agent/a', '/agent/b'],
        'listEntries shows the registered workloads',
      )

      await spire.restartAgent()
      t.ok(spire.agentRunning, 'agent is back')
      const again = await fetchX509(spire.socketPath)
      t.teardown(() => rmSync(again.dir, { recursive: true, force: true }))
      t.equal(again.code, 0, 'the restarted agent serves on the same socket without a new join token')

      const pem = await spire.bundlePem()
      t.match(pem, /-----BEGIN CERTIFICATE-----/)

      const pids = spire.pids()
      await spire.close()
      t.notOk(pids.some(alive), 'no SPIRE process outlives close()')
    },
  )
}
