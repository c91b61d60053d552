/**
 * Debian packages the suites drive as real peers (curl for Expect:
 * 100-continue as curl itself sends it, openssl s_client/s_server for TLS
 * probes). A fresh CI machine may lack them: install what is missing with
 * apt-get when running as root, once, before any test file starts. Tests that
 * need one fail, never skip, when it is still missing.
 */
import { execFileSync } from 'node:child_process'

/** Command on PATH → Debian package that provides it. */
export const DEBIAN_TOOLS: Readonly<Record<string, string>> = {
  curl: 'curl',
  openssl: 'openssl',
  promtool: 'prometheus',
  // The server itself, for test/prometheus/scrape.test.ts (same package as promtool).
  prometheus: 'prometheus',
  'redis-server': 'redis-server',
  // mTLS interop peer, both ways (sidecar/test/nginx-interop.test.ts).
  nginx: 'nginx',
}

function onPath(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Installs the packages of missing tools; throws with the reason when it cannot. */
export function ensureDebianTools(tools: Readonly<Record<string, string>> = DEBIAN_TOOLS): void {
  const missing = Object.entries(tools)
    .filter(([command]) => !onPath(command))
    .map(([, pkg]) => pkg)
  if (missing.length === 0) return
  if (process.getuid?.() !== 0 || !onPath('apt-get')) {
    throw new Error(`missing ${missing.join(', ')}: install with apt-get install -y ${missing.join(' ')}`)
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env })
  execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], {
    stdio: 'inherit',
    env,
  })
}
