/**
 * A sidecar for a test, in this process: the preamble every test config shares (the Workload API socket and
 * hint, an admin listener on a free port, a short drain) before the test's own YAML; identity retries every
 * 50 ms; no logs and no audit lines unless the test passes a logger or a sink; destroyed when the test ends.
 */
import { Writable } from 'node:stream'
import type { Test } from 'tap'
import { parseConfig } from '../../src/config/index.ts'
import { createLogger } from '../../src/observe/log.ts'
import { Sidecar, type SidecarOptions } from '../../src/sidecar.ts'

export const quickBackoff = () => ({ next: () => 50, reset() {} })

export const quietLogger = createLogger({ level: 'error', stream: { write: () => true } })

/** An audit sink that drops every line. */
export const discard = () =>
  new Writable({
    write(_chunk, _enc, done) {
      done()
    },
  })

export async function startTestSidecar(
  t: Test,
  workload: { socket: string; hint: string; drainTimeout?: string },
  yaml: string,
  options: SidecarOptions = {},
): Promise<Sidecar> {
  const config = parseConfig(
    `workloadApi: { socket: "${workload.socket}", hint: ${workload.hint} }
admin: { address: "127.0.0.1:0" }
drainTimeout: ${workload.drainTimeout ?? '2s'}
${yaml}`,
    `${workload.hint}.yaml`,
    {},
  )
  const sidecar = await Sidecar.start(config, {
    identity: { backoff: quickBackoff },
    logger: quietLogger,
    auditStdout: discard(),
    ...options,
  })
  t.teardown(() => sidecar.destroy())
  return sidecar
}
