// engine: opa in a running mesh: the server sidecar asks a real OPA server for every request, and a
// decision service that is gone denies (fail closed) instead of letting traffic through.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import t from 'tap'
import { startMesh } from '../../sidecar/test/helpers/mesh.ts'
import { startOpa } from '../harness/opa.ts'
import { requireOpa } from '../harness/opa-available.ts'

const REGO = `package svidecar.e2e

default allow := false

allow if {
  input.action == "http.route"
  input.resource.method in {"GET", "POST"}
  input.resource.path == "/echo"
}

rule_id := "echo" if allow
`

t.test('engine: opa decides every request of a running sidecar, and denies when OPA is gone', async (t) => {
  if (!requireOpa(t)) return
  const opa = await startOpa(t, { 'e2e.rego': REGO })
  const mesh = await startMesh(t, {
    serverYaml: `policy: { engine: opa, opa: { url: "${opa.url}", package: svidecar.e2e, timeout: 2s, cacheEntries: 0 } }`,
  })
  // The decision events' channel, as the audit log reads it.
  const events: Array<{
    listener: string
    engine: string
    decision: string
    ruleId?: string
    reason: string
  }> = []
  const record = (e: unknown) => events.push(e as (typeof events)[number])
  subscribe('svidecar:policy:decision', record)
  t.teardown(() => unsubscribe('svidecar:policy:decision', record))

  const ok = await fetch(`${mesh.outboundUrl}/echo`, { method: 'POST', body: 'hi' })
  t.equal(ok.status, 200)
  t.equal(await ok.text(), 'hi')
  const before = mesh.app.seen.length
  const denied = await fetch(`${mesh.outboundUrl}/admin`)
  await denied.text()
  t.equal(denied.status, 403)
  t.equal(denied.headers.get('x-svidecar-upstream-error'), 'SVD_POLICY_DENIED')
  t.equal(mesh.app.seen.length, before, 'the denied request reached nothing')

  await opa.stop()
  const failed = await fetch(`${mesh.outboundUrl}/echo`, { method: 'POST', body: 'hi' })
  await failed.text()
  t.equal(failed.status, 403, 'no decision service: denied, never let through')
  t.equal(mesh.app.seen.length, before, 'nothing reached the app while OPA was gone')

  const mine = events.filter((e) => e.listener === 'public')
  t.same(
    mine.map((e) => [e.engine, e.decision, e.ruleId]),
    [
      ['opa', 'allow', 'echo'],
      ['opa', 'deny', undefined],
      ['opa', 'deny', undefined],
    ],
  )
  t.match(mine.at(-1)?.reason, /^opa: /, 'the denial says the decision service failed')
})
