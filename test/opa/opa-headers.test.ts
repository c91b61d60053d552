// policy.headers with engine: opa: the selected request headers are in the input OPA gets (input.context.headers),
// and no other header of the request is.
import t from 'tap'
import { startMesh } from '../../sidecar/test/helpers/mesh.ts'
import { startOpa } from '../harness/opa.ts'
import { requireOpa } from '../harness/opa-available.ts'

const REGO = `package svidecar.headers

default allow := false

allow if {
  input.resource.path == "/echo"
  input.context.headers["x-env"] == "prod"
  object.keys(input.context.headers) == {"x-env"}
}

rule_id := "prod-only" if allow
`

t.test(
  'engine: opa sees the selected request headers in input.context.headers, and only those',
  async (t) => {
    if (!requireOpa(t)) return
    const opa = await startOpa(t, { 'headers.rego': REGO })
    const mesh = await startMesh(t, {
      serverYaml: `policy: { engine: opa, headers: [x-env], opa: { url: "${opa.url}", package: svidecar.headers, timeout: 2s, cacheEntries: 0 } }`,
    })
    const cases = [
      [{ 'x-env': 'prod' }, 200],
      [{ 'x-env': 'dev' }, 403],
      [{}, 403],
      [{ 'x-env': 'prod', 'x-other': 'yes', authorization: 'Bearer tok-SECRET' }, 200],
    ] as const
    for (const [headers, want] of cases) {
      const res = await fetch(`${mesh.outboundUrl}/echo`, { headers: { ...headers } })
      await res.text()
      t.equal(res.status, want, JSON.stringify(headers))
    }
  },
)
