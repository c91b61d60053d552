// `svidecar policy explain --engine opa`: the decision the sidecar would get from a real OPA server, with the
// decision document the server computed, in the built-in explanation's shape.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { svidecar } from '../../sidecar/test/helpers/cli.ts'
import { startOpa } from '../harness/opa.ts'
import { requireOpa } from '../harness/opa-available.ts'

const ROOT = join(import.meta.dirname, '../..')
const OPA_DIR = join(ROOT, 'deploy/examples/policies/opa')

t.test('policy explain --engine opa asks the server and shows its decision document', async (t) => {
  if (!requireOpa(t)) return
  const opa = await startOpa(t, {
    'mesh.rego': readFileSync(join(OPA_DIR, 'mesh.rego'), 'utf8'),
    'svidecar_lib.rego': readFileSync(join(OPA_DIR, 'svidecar_lib.rego'), 'utf8'),
  })
  const pkg = /^package\s+(\S+)/m.exec(readFileSync(join(OPA_DIR, 'mesh.rego'), 'utf8'))?.[1] ?? ''
  const base = ['policy', 'explain', '--engine', 'opa', '--opa-url', opa.url, '--opa-package', pkg]
  const agent = 'spiffe://example.org/ns/agents/sa/planner'

  const denied = await svidecar(...base, '--subject', agent, '--tool', 'admin_reset')
  t.equal(denied.code, 1, denied.stderr)
  t.match(denied.stdout, /decision: DENY by rule no-admin-tools\n/)
  t.match(denied.stdout, /engine: opa/)
  t.match(denied.stdout, /decision document:\n {2}\{\n/)
  t.match(denied.stdout, /"allow": false/)

  const allowed = await svidecar(...base, '--subject', agent, '--model', 'gpt-4o', '--json')
  t.equal(allowed.code, 0, allowed.stderr)
  const x = JSON.parse(allowed.stdout)
  t.match(x.decision, { decision: 'allow', engine: 'opa', ruleId: 'agents-use-gpt-4o' })
  t.match(x.document, { allow: true })

  await opa.stop()
  const gone = await svidecar(...base, '--subject', agent, '--model', 'gpt-4o')
  t.equal(gone.code, 1, 'no server: denied, fail closed')
  t.notMatch(gone.stdout, /decision document/)
})
