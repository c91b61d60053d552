import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

/**
 * A short-lived directory for unix sockets. tap's own testdir nests under the
 * test's full name, and a socket path longer than 107 bytes cannot be bound.
 */
export function socketDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'svd-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}
