// [C31] Rotation under load: 10 s SVIDs, continuous requests for 60 s, zero failures,
// and new handshakes see the server's new SVIDs: the serials asserted are the ones the
// client sidecar saw on the wire, checked against the ones the server sidecar held.
import t from 'tap'
import { on } from '../src/observe/events.ts'
import { startMesh } from './helpers/mesh.ts'

// Node prints serials in upper-case hex; a leading zero may or may not be kept.
const norm = (serial: string) => serial.toUpperCase().replace(/^0+/, '')

t.test(
  '[C31] 10 s SVIDs under continuous load for 60 s: no failed request, new handshakes see new serials',
  async (t) => {
    const mesh = await startMesh(t, { api: { x509SvidTtlMs: 10_000 } })
    const identity = mesh.serverSidecar.identity
    // Every SVID the server sidecar held during the run.
    const held = new Set<string>()
    const first = identity.current()?.svid.serialNumber
    if (first) held.add(norm(first))
    t.teardown(
      identity.onChange((snapshot) => {
        if (snapshot) held.add(norm(snapshot.svid.serialNumber))
      }),
    )
    // Every serial the client sidecar saw on a full outbound handshake, in order of first sight.
    const seen: string[] = []
    t.teardown(
      on('tlsHandshake', (e) => {
        if (e.direction !== 'outbound' || e.resumed || !e.peerSerial) return
        const serial = norm(e.peerSerial)
        if (!seen.includes(serial)) seen.push(serial)
      }),
    )

    const deadline = Date.now() + Number(process.env.ROTATION_MS ?? 60_000)
    let ok = 0
    const failures: string[] = []
    const worker = async () => {
      while (Date.now() < deadline) {
        try {
          const res = await fetch(`${mesh.outboundUrl}/echo`, { method: 'POST', body: 'ping' })
          if (res.status === 200 && (await res.text()) === 'ping') ok++
          else failures.push(`${res.status} ${res.headers.get('x-svidecar-error')}`)
        } catch (err) {
          failures.push(String(err))
        }
      }
    }
    await Promise.all([worker(), worker(), worker(), worker()])
    t.same(failures, [], 'zero failed requests')
    t.ok(ok > 1000, `${ok} requests`)
    t.same(
      seen.filter((s) => !held.has(s)),
      [],
      'every serial the client saw is one the server sidecar held',
    )
    // 60 s of 10 s SVIDs renewed at half-life: about 12 SVIDs; the client's handshakes saw most of them.
    const expected = Math.floor(Number(process.env.ROTATION_MS ?? 60_000) / 5000) - 4
    t.ok(seen.length >= Math.max(2, expected), `the client saw ${seen.length} server serials`)
  },
)
