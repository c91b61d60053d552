// The engine's bearer token against a real OPA server run with token authentication and basic authorization
// (`opa run --authentication=token --authorization=basic`, a system.authz policy that checks input.identity):
// the right token gets decisions, a missing or wrong one is denied with OPA's stable error code and never echoed.
import { createOpaEngine, type PolicyRequest } from 'svidecar'
import t from 'tap'
import { SpiffeId } from 'workload-api-client'
import { startOpa } from '../harness/opa.ts'
import { requireOpa } from '../harness/opa-available.ts'

const TOKEN = 'opa-token-S3CRET'

const request: PolicyRequest = {
  subject: SpiffeId.parse('spiffe://example.org/agent'),
  resource: { kind: 'mcp.tool', name: 'search' },
  context: { time: new Date() },
}

if (requireOpa(t)) {
  t.test('opa: token authentication as OPA enforces it', async (t) => {
    const opa = await startOpa(
      t,
      {
        'authz.rego': 'package svidecar.authz\n\nallow := true\n\nrule_id := "all"\n',
        // The health endpoint stays open so the harness can tell when the server is up.
        'system.rego': `package system.authz

default allow := false

allow if input.path == ["health"]

allow if input.identity == "${TOKEN}"
`,
      },
      { args: ['--authentication=token', '--authorization=basic'] },
    )
    const good = createOpaEngine({ url: opa.url, package: 'svidecar.authz', timeoutMs: 5000, token: TOKEN })
    t.teardown(() => good.close())
    t.match(await good.decide(request), { decision: 'allow', ruleId: 'all', engine: 'opa' })

    for (const [what, token] of [
      ['no token', undefined],
      ['a wrong token', 'not-the-token'],
    ] as const) {
      const engine = createOpaEngine({
        url: opa.url,
        package: 'svidecar.authz',
        timeoutMs: 5000,
        ...(token === undefined ? {} : { token }),
      })
      t.teardown(() => engine.close())
      const d = await engine.decide(request)
      t.match(d, { decision: 'deny', mode: 'enforce', engine: 'opa' }, what)
      t.match(d.reason, /answered HTTP 401 \(unauthorized\); denied \(fail closed\)$/, `${what}: OPA's code`)
      t.notMatch(d.reason, /not-the-token|S3CRET/, `${what}: no token in the reason`)
    }
  })
}
