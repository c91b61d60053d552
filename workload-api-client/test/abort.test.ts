// CallOptions.signal and WaitOptions.signal as AbortSignal users expect them (the DOM convention every Node
// API follows): a signal that is already aborted refuses the call at once, without an RPC, and an abort in
// flight rejects with the same code and reason whether the RPC is a stream or unary.
import { join } from 'node:path'
import { DevWorkloadApi } from '@svidecar/certs'
import t from 'tap'
import { isSpiffeError, WorkloadApiClient, X509Source } from 'workload-api-client'

const api = await DevWorkloadApi.start({ workloads: [{ spiffeId: 'spiffe://example.org/w' }] })
t.teardown(() => api.close())

function aborted(): AbortSignal {
  const ac = new AbortController()
  ac.abort()
  return ac.signal
}

t.test('an already aborted signal refuses every one-shot call', async (t) => {
  const client = new WorkloadApiClient({ address: api.endpoint })
  t.teardown(() => client.close())
  const calls: [string, () => Promise<unknown>][] = [
    ['fetchX509Context', () => client.fetchX509Context({ signal: aborted() })],
    ['fetchX509Bundles', () => client.fetchX509Bundles({ signal: aborted() })],
    ['fetchJwtBundles', () => client.fetchJwtBundles({ signal: aborted() })],
    ['fetchJwtSvid', () => client.fetchJwtSvid({ audience: 'a' }, { signal: aborted() })],
    ['validateJwtSvid', () => client.validateJwtSvid('x.y.z', 'a', { signal: aborted() })],
  ]
  for (const [name, call] of calls) {
    const err = await call().then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(isSpiffeError(err, 'SPIFFE_WLAPI_CLOSED'), `${name} refused`)
    t.equal((err as { reason?: string } | undefined)?.reason, 'ABORTED', `${name}: reason ABORTED`)
  }
})

t.test('an abort in flight rejects unary calls as ABORTED too, like the streams', async (t) => {
  const client = new WorkloadApiClient({ address: api.endpoint })
  t.teardown(() => client.close())
  const ac = new AbortController()
  const pending = client.fetchJwtSvid({ audience: 'a' }, { signal: ac.signal })
  ac.abort()
  const err = await pending.then(
    () => undefined,
    (e: unknown) => e,
  )
  // The server may have answered before the cancel reached it; only a refusal is checked for its reason.
  if (err !== undefined) {
    t.ok(isSpiffeError(err, 'SPIFFE_WLAPI_CLOSED'))
    t.equal((err as { reason?: string }).reason, 'ABORTED')
  } else {
    t.pass('answered before the abort took effect')
  }
})

t.test('X509Source.create with an aborted signal gives up at once, not at its timeout', async (t) => {
  // Nothing listens here: without the signal, create() would retry until timeoutMs.
  const address = `unix://${join(t.testdirName, 'nobody.sock')}`
  const started = performance.now()
  const err = await X509Source.create({ address, signal: aborted(), timeoutMs: 60_000 }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(isSpiffeError(err, 'SPIFFE_WLAPI_CLOSED'))
  t.equal((err as { reason?: string } | undefined)?.reason, 'ABORTED')
  t.ok(performance.now() - started < 30_000, 'well before the 60 s timeout')
})

t.test('a closed client refuses through the promise, never by a synchronous throw', async (t) => {
  const client = new WorkloadApiClient({ address: api.endpoint })
  client.close()
  const calls: [string, () => Promise<unknown>][] = [
    ['fetchX509Context', () => client.fetchX509Context()],
    ['fetchX509Bundles', () => client.fetchX509Bundles()],
    ['fetchJwtBundles', () => client.fetchJwtBundles()],
    ['fetchJwtSvid', () => client.fetchJwtSvid({ audience: 'a' })],
    ['validateJwtSvid', () => client.validateJwtSvid('x.y.z', 'a')],
  ]
  for (const [name, call] of calls) {
    let pending: Promise<unknown> | undefined
    t.doesNotThrow(() => {
      pending = call()
    }, `${name} returns a promise`)
    const err = await pending?.then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(isSpiffeError(err, 'SPIFFE_WLAPI_CLOSED'), `${name} rejects with SPIFFE_WLAPI_CLOSED`)
  }
})
