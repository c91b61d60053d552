// OpenTelemetry spans over OTLP/HTTP: one per request on each sidecar, children of the client's traceparent,
// the upstream's traceparent naming the sidecar's span; sampling; config errors; and with no `tracing:` the
// SDK is never loaded.
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, parseConfig } from '../src/config/index.ts'
import { AGENT, startMesh } from './helpers/mesh.ts'

interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: Array<{ key: string; value: Record<string, unknown> }>
  status?: { code?: number; message?: string }
}
interface OtlpExport {
  resourceSpans: Array<{
    resource: { attributes: Array<{ key: string; value: Record<string, unknown> }> }
    scopeSpans: Array<{ spans: OtlpSpan[] }>
  }>
}

/**
 * An OTLP/HTTP receiver: it stands in for an OpenTelemetry Collector, which cannot run here. It takes
 * `POST /v1/traces` with the JSON encoding (what @opentelemetry/exporter-trace-otlp-http sends) and keeps
 * every span with its resource's service.name.
 */
class OtlpReceiver {
  readonly spans: Array<OtlpSpan & { service: string }> = []
  readonly contentTypes: string[] = []
  readonly #server: Server
  private constructor(server: Server) {
    this.#server = server
  }
  static async start(): Promise<OtlpReceiver> {
    const server = createServer()
    const receiver = new OtlpReceiver(server)
    server.on('request', async (req, res) => {
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      receiver.contentTypes.push(String(req.headers['content-type']))
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport
      for (const rs of body.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue
        for (const ss of rs.scopeSpans)
          for (const span of ss.spans) receiver.spans.push({ ...span, service: String(service) })
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return receiver
  }
  get endpoint(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/v1/traces`
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }
}

function attr(span: OtlpSpan, key: string): unknown {
  const v = span.attributes.find((a) => a.key === key)?.value
  if (v === undefined) return undefined
  return v.stringValue ?? (v.intValue === undefined ? undefined : Number(v.intValue))
}

// OTLP's SpanKind and StatusCode numbers.
const SERVER = 2
const CLIENT = 3
const ERROR = 2

const POLICY = `version: 1
mode: enforce
rules:
  - id: agent-echo
    effect: allow
    subjects: ["${AGENT}"]
    resources:
      - kind: http.route
        path: /echo
`

async function tracedMesh(t: Test, receiver: OtlpReceiver, extra = '') {
  const policy = join(t.testdir(), 'policy.yaml')
  writeFileSync(policy, POLICY)
  const tracing = (service: string) =>
    `tracing: { otlp: { endpoint: "${receiver.endpoint}", headers: { x-api-key: not-logged } }, serviceName: ${service}${extra} }\n`
  return startMesh(t, {
    agentYaml: tracing('agent'),
    serverYaml: `policy: { file: "${policy}" }\n${tracing('mcp-server')}`,
  })
}

t.test(
  'a request through the mesh: a span on each side, one trace, parent from the incoming traceparent',
  async (t) => {
    const receiver = await OtlpReceiver.start()
    t.teardown(() => receiver.close())
    const mesh = await tracedMesh(t, receiver)
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const parentId = '00f067aa0ba902b7'
    const res = await fetch(`${mesh.outboundUrl}/echo?q=secret`, {
      method: 'POST',
      body: 'hi',
      headers: { traceparent: `00-${traceId}-${parentId}-01` },
    })
    t.equal(res.status, 200)
    await res.arrayBuffer()
    const seen = mesh.app.seen.at(-1)?.headers.traceparent
    // Closing flushes the batch processor: the spans are exported before close() resolves.
    await mesh.agentSidecar.close()
    await mesh.serverSidecar.close()

    t.same(new Set(receiver.contentTypes), new Set(['application/json']), 'OTLP/HTTP with the JSON encoding')
    const agent = receiver.spans.find((s) => s.service === 'agent')
    const server = receiver.spans.find((s) => s.service === 'mcp-server')
    t.ok(agent && server, 'a span from each sidecar')
    if (agent === undefined || server === undefined) return
    t.equal(agent.traceId, traceId, 'the agent side continues the client trace')
    t.equal(agent.parentSpanId, parentId, 'its parent is the span the client named')
    t.equal(agent.kind, CLIENT, 'outbound: the sidecar calls an upstream for its app')
    t.equal(server.traceId, traceId)
    t.equal(server.parentSpanId, agent.spanId, "the server side's parent is the agent sidecar's span")
    t.equal(server.kind, SERVER)
    t.equal(
      seen,
      `00-${traceId}-${server.spanId}-01`,
      "the app's traceparent names the server sidecar's span",
    )
    t.equal(agent.name, 'POST')
    for (const span of [agent, server]) {
      t.equal(attr(span, 'http.request.method'), 'POST')
      t.equal(attr(span, 'url.path'), '/echo', 'the path, never the query')
      t.equal(attr(span, 'http.response.status_code'), 200)
      t.equal(span.status?.code ?? 0, 0, 'status unset on success')
    }
    t.equal(attr(agent, 'svidecar.direction'), 'outbound')
    t.equal(attr(agent, 'svidecar.listener'), 'egress')
    t.equal(attr(agent, 'svidecar.upstream'), 'mcp')
    t.equal(attr(server, 'svidecar.direction'), 'inbound')
    t.equal(attr(server, 'svidecar.peer'), AGENT, 'the verified peer')
    t.equal(attr(server, 'svidecar.subject'), AGENT)
    t.notOk(JSON.stringify(receiver.spans).includes('not-logged'), 'the exporter header is not in any span')
  },
)

t.test('no traceparent: a root span whose ids the upstream gets; a refusal is an error span', async (t) => {
  const receiver = await OtlpReceiver.start()
  t.teardown(() => receiver.close())
  const mesh = await tracedMesh(t, receiver)
  const ok = await fetch(`${mesh.outboundUrl}/echo`, { method: 'POST', body: 'x' })
  t.equal(ok.status, 200)
  await ok.arrayBuffer()
  const seen = String(mesh.app.seen.at(-1)?.headers.traceparent)
  const denied = await fetch(`${mesh.outboundUrl}/admin`, { method: 'POST' })
  t.equal(denied.status, 403)
  await denied.arrayBuffer()
  await mesh.agentSidecar.close()
  await mesh.serverSidecar.close()

  const roots = receiver.spans.filter((s) => s.service === 'agent' && attr(s, 'url.path') === '/echo')
  t.equal(roots.length, 1)
  const root = roots[0]
  t.notOk(root?.parentSpanId, 'a root span')
  t.match(seen, new RegExp(`^00-${root?.traceId}-[0-9a-f]{16}-01$`), 'the app sees the same trace')
  const refused = receiver.spans.find((s) => s.service === 'mcp-server' && attr(s, 'url.path') === '/admin')
  t.equal(attr(refused as OtlpSpan, 'error.type'), 'SVD_POLICY_DENIED')
  t.equal(attr(refused as OtlpSpan, 'http.response.status_code'), 403)
  t.equal(refused?.status?.code, ERROR)
})

t.test('sampleRatio 0: new traces are not recorded; a sampled parent still is', async (t) => {
  const receiver = await OtlpReceiver.start()
  t.teardown(() => receiver.close())
  const mesh = await tracedMesh(t, receiver, ', sampleRatio: 0')
  const fresh = await fetch(`${mesh.outboundUrl}/echo`, { method: 'POST', body: 'x' })
  await fresh.arrayBuffer()
  t.match(String(mesh.app.seen.at(-1)?.headers.traceparent), /-00$/, 'the upstream learns it was not sampled')
  const traceId = '0af7651916cd43dd8448eb211c80319c'
  const sampled = await fetch(`${mesh.outboundUrl}/echo`, {
    method: 'POST',
    body: 'x',
    headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` },
  })
  await sampled.arrayBuffer()
  await mesh.agentSidecar.close()
  await mesh.serverSidecar.close()
  t.same(
    [...new Set(receiver.spans.map((s) => s.traceId))],
    [traceId],
    'only the trace whose parent was sampled was exported',
  )
  t.equal(receiver.spans.length, 2)
})

t.test('config: tracing is checked like the rest', async (t) => {
  const base =
    'workloadApi: { socket: "unix:///tmp/x.sock" }\ninbound: [{ name: in, address: "127.0.0.1:0", forwardTo: "http://127.0.0.1:1", authorize: { any: true } }]\n'
  const config = parseConfig(
    `${base}tracing: { otlp: { endpoint: "http://collector:4318/v1/traces" } }\n`,
    'c.yaml',
    {},
  )
  t.same(config.tracing, {
    otlp: { endpoint: 'http://collector:4318/v1/traces', headers: new Map(), timeoutMs: 10_000 },
    sampleRatio: 1,
    serviceName: 'svidecar',
  })
  t.equal(parseConfig(base, 'c.yaml', {}).tracing, undefined, 'off by default')
  for (const [yaml, path] of [
    ['tracing: { otlp: { endpoint: "ftp://x/v1/traces" } }', 'tracing.otlp.endpoint'],
    ['tracing: { otlp: { endpoint: "http://user:pw@x/v1/traces" } }', 'tracing.otlp.endpoint'],
    ['tracing: { otlp: { endpoint: "http://x/v1/traces" }, sampleRatio: 1.5 }', 'tracing.sampleRatio'],
    [
      'tracing: { otlp: { endpoint: "http://x/v1/traces", headers: { "bad header": x } } }',
      'tracing.otlp.headers',
    ],
    ['tracing: { sampleRatio: 1 }', 'tracing.otlp'],
  ] as const) {
    let issues: string[] = []
    try {
      parseConfig(`${base}${yaml}\n`, 'c.yaml', {})
    } catch (err) {
      if (err instanceof ConfigError) issues = err.issues.map((i) => i.path)
    }
    t.ok(
      issues.some((p) => p.startsWith(path)),
      `${yaml}: refused at ${path} (${issues.join(', ')})`,
    )
  }
})

t.test('without tracing: no OpenTelemetry module is ever loaded', async (t) => {
  // A fresh process, so nothing another test loaded counts: it records every module resolved while a sidecar
  // without `tracing:` starts and proxies a request.
  const script = `
import { registerHooks } from 'node:module'
const loaded = []
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.push(r.url); return r } })
const { startMesh } = await import(${JSON.stringify(new URL('./helpers/mesh.ts', import.meta.url).href)})
const teardowns = []
const fakeT = { teardown: (f) => teardowns.push(f), testdir: () => '/tmp' }
const mesh = await startMesh(fakeT)
const res = await fetch(mesh.outboundUrl + '/echo', { method: 'POST', body: 'x' })
await res.arrayBuffer()
for (const f of teardowns.reverse()) await f()
process.stdout.write(JSON.stringify({ status: res.status, otel: loaded.filter((u) => u.includes('@opentelemetry/') && !u.includes('@opentelemetry/api/')), all: loaded.length }))
`
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--conditions=svidecar-source', '--input-type=module', '-e', script],
      { timeout: 60_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    )
  })
  const result = JSON.parse(out) as { status: number; otel: string[]; all: number }
  t.equal(result.status, 200, 'the request went through')
  t.ok(result.all > 50, `the hook saw the sidecar's modules (${result.all})`)
  // @opentelemetry/api is prom-client's own dependency (trace ids for exemplars), loaded with the metrics.
  t.same(result.otel, [], 'neither the SDK nor the exporter is loaded')
})
