// Path confusion over a real mesh with fetch: a rule on /files/* must not admit a request that a server which
// decodes %2F before resolving dot-segments reads as /admin; the app never sees it. The unit cases are in
// test/policy/path-tricks.test.ts.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { AGENT, startMesh } from './helpers/mesh.ts'

t.test('inbound: /files/..%2Fadmin is refused by a policy that allows /files/*', async (t) => {
  const file = join(t.testdir(), 'policy.yaml')
  writeFileSync(
    file,
    `version: 1
rules:
  - id: files
    effect: allow
    subjects: [${AGENT}]
    resources: [{ kind: http.route, methods: [GET], path: /files/* }]
`,
  )
  const mesh = await startMesh(t, { serverYaml: `policy: { file: "${file}" }` })
  const ok = await fetch(`${mesh.outboundUrl}/files/report.txt`)
  t.equal(ok.status, 200)
  await ok.arrayBuffer()
  const seen = mesh.app.seen.length
  for (const path of ['/files/..%2Fadmin', '/files/x%2F..%2F..%2Fadmin', '/files/..%5Cadmin']) {
    const res = await fetch(`${mesh.outboundUrl}${path}`)
    t.equal(res.status, 403, path)
    const body = (await res.json()) as { error: { code: string } }
    t.equal(body.error.code, 'SVD_POLICY_DENIED', path)
  }
  t.equal(mesh.app.seen.length, seen, 'nothing reached the app')
  const plain = await fetch(`${mesh.outboundUrl}/files/a%2Fb`)
  t.equal(plain.status, 200, 'an encoded slash alone is one segment, and allowed')
  await plain.arrayBuffer()
})
