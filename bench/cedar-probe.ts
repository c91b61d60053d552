import { CedarEngine, parseCedarPolicy, parsePolicy, translateToCedar } from 'svidecar'
import { SpiffeId } from 'workload-api-client'
const rules: string[] = []
for (let i = 0; i < 10_000; i++) {
  const kind = i % 3
  const resource = kind === 0 ? `{ kind: http.route, methods: [GET, POST], path: "/svc-${i}/**" }` : kind === 1 ? `{ kind: mcp.tool, name: "tool-${i}-*" }` : `{ kind: llm.model, name: "model-${i}" }`
  rules.push(`  - { id: r${i}, effect: allow, subjects: ["spiffe://example.org/ns/n${i % 100}/sa/s${i}"], resources: [${resource}] }`)
}
const doc = parsePolicy(`version: 1\nrules:\n${rules.join('\n')}\n`, 'b.yaml').document
let t0 = performance.now()
const { text } = translateToCedar(doc)
const pol = parseCedarPolicy(text, 'b.cedar')
console.log('parse', performance.now() - t0)
t0 = performance.now()
const e = new CedarEngine(pol)
console.log('prepare', performance.now() - t0)
const req = { subject: SpiffeId.parse('spiffe://example.org/ns/n5/sa/s105'), resource: { kind: 'mcp.tool' as const, name: 'tool-1-x' }, context: { time: new Date() } }
for (let k = 0; k < 3; k++) { t0 = performance.now(); for (let i = 0; i < 100; i++) e.decide(req); console.log('per decision ms', (performance.now() - t0) / 100) }
console.log(e.decide(req))
