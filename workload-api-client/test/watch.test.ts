// Watch reconnects: a stream that ends cleanly is reopened with backoff, and the backoff resets only after
// a stream stayed up. Driven by a virtual clock against the scripted gRPC server, so nothing sleeps.
import { DevCa } from '@svidecar/certs'
import t, { type Test } from 'tap'
import { type Watch, type WatchClock, WorkloadApiClient } from '../src/index.ts'
import type { JWTBundlesResponse, MessageInit, X509BundlesResponse, X509SVIDResponse } from '../src/wire.ts'
import { ScriptedServer, type StreamStep } from './helpers/scripted-server.ts'
import { socketDir } from './helpers/tmp.ts'
import { waitFor } from './helpers/wait.ts'

const TD = 'example.org'
const ca = DevCa.create({ trustDomain: TD })
const issued = ca.issueX509Svid({ spiffeId: `spiffe://${TD}/agent` })

/** One valid message per watched RPC, and how to start that watch. */
const WATCHES: Array<{
  method: string
  message: unknown
  watch: (c: WorkloadApiClient, onUpdate: () => void) => Watch
}> = [
  {
    method: 'FetchX509SVID',
    message: {
      svids: [
        {
          spiffeId: issued.spiffeId,
          x509Svid: issued.certChainDer,
          x509SvidKey: issued.keyDer,
          bundle: ca.bundleDer(),
          hint: '',
        },
      ],
      crl: [],
      federatedBundles: {},
    } satisfies MessageInit<X509SVIDResponse>,
    watch: (c, onUpdate) => c.watchX509Context({ onUpdate }),
  },
  {
    method: 'FetchX509Bundles',
    message: { crl: [], bundles: { [TD]: ca.bundleDer() } } satisfies MessageInit<X509BundlesResponse>,
    watch: (c, onUpdate) => c.watchX509Bundles({ onUpdate }),
  },
  {
    method: 'FetchJWTBundles',
    message: {
      bundles: { [TD]: new TextEncoder().encode('{"keys":[]}') },
    } satisfies MessageInit<JWTBundlesResponse>,
    watch: (c, onUpdate) => c.watchJwtBundles({ onUpdate }),
  },
]

/** Virtual time: sleeping advances it at once; a sleep that would end past `windowMs` parks until close. */
function virtualClock(windowMs: number) {
  let now = 0
  const state = { delays: [] as number[], parked: 0 }
  const clock: WatchClock = {
    now: () => now,
    sleep(ms, signal) {
      state.delays.push(ms)
      if (now + ms > windowMs) {
        state.parked++
        return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
      }
      now += ms
      return new Promise((resolve) => setImmediate(resolve))
    },
  }
  return {
    clock,
    state,
    advance: (ms: number) => {
      now += ms
    },
  }
}

async function setup(t: Test, method: string, steps: StreamStep<unknown>[], clock: WatchClock) {
  const server = await ScriptedServer.start(socketDir(t))
  t.teardown(() => server.close())
  server.script(method, ...steps)
  // The default backoff (linear 1 s … 30 s) and the default stable period: only time is virtual.
  const client = new WorkloadApiClient({ address: server.endpoint, clock })
  t.teardown(() => client.close())
  return { server, client }
}

for (const w of WATCHES) {
  t.test(`${w.method}: a stream that sends its update and ends OK is reopened with backoff`, async (t) => {
    const v = virtualClock(6000)
    const { server, client } = await setup(t, w.method, [{ messages: [w.message], end: 'ok' }], v.clock)
    let updates = 0
    const watch = w.watch(client, () => updates++)
    t.teardown(() => watch.close())
    await waitFor(() => v.state.parked === 1, 'the watch to wait past the 6 s window')
    // Opened at 0, 1, 3 and 6 s; never reopened without a wait, and the wait grows because
    // no stream stayed up long enough to prove the server healthy.
    t.equal(server.callCount(w.method), 4, 'four opens in six seconds')
    t.same(v.state.delays, [1000, 2000, 3000, 4000])
    t.equal(updates, 4, 'every stream’s update was applied')
  })

  t.test(`${w.method}: the backoff resets only after a stream stayed up`, async (t) => {
    const v = virtualClock(22_000)
    const msg = w.message
    const { server, client } = await setup(
      t,
      w.method,
      [
        { messages: [msg], end: 'ok' },
        { messages: [msg], end: 'ok' },
        { messages: [msg], end: 'hang' },
        { messages: [msg], end: 'ok' },
      ],
      v.clock,
    )
    let updates = 0
    const watch = w.watch(client, () => updates++)
    t.teardown(() => watch.close())
    await waitFor(() => server.callCount(w.method) === 3 && updates === 3, 'the third stream and its update')
    t.same(v.state.delays, [1000, 2000], 'short-lived streams back off more each time')
    v.advance(15_000)
    server.endOpenStreams()
    await waitFor(() => v.state.parked === 1, 'the watch to wait past the window')
    t.same(
      v.state.delays,
      [1000, 2000, 1000, 2000, 3000],
      'after a stream that stayed up 15 s the backoff starts again at 1 s',
    )
    t.equal(server.callCount(w.method), 5)
  })
}

t.test('streamStableMs must be a non-negative number', async (t) => {
  t.throws(() => new WorkloadApiClient({ address: 'unix:///tmp/x.sock', streamStableMs: -1 }), {
    code: 'SPIFFE_ARGUMENT_INVALID',
  })
})
