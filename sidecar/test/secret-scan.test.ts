// Security §8: a full mesh run with every log line, audit line and write to stdout/stderr captured carries
// no credential: not the Authorization, x-api-key or Cookie values, not a body, not the SVID key, not a JWT-SVID.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import t from 'tap'
import { WorkloadApiClient } from 'workload-api-client'
import { WebSocket } from 'ws'
import { waitFor } from '../../workload-api-client/test/helpers/wait.ts'
import { type PolicyDecisionEvent, publishPolicyDecision } from '../src/observe/events.ts'
import { createLogger } from '../src/observe/log.ts'
import { describeResource } from '../src/policy/engine.ts'
import { startLlmSidecar } from './helpers/llm-sidecar.ts'
import { AGENT, MCP, startMesh } from './helpers/mesh.ts'
import { trafficSuite } from './helpers/traffic-suite.ts'

const fixture = (label: string) => `${label}-${randomBytes(12).toString('hex')}`
const BEARER = fixture('fixture-bearer')
const API_KEY = `sk-${fixture('fixture-apikey')}`
const COOKIE = fixture('fixture-cookie')
const BODY = fixture('fixture-body')
const QUERY = fixture('fixture-query')

/** Everything written to it, as text. */
class Capture extends Writable {
  text = ''
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString()
    done()
  }
}

/** Tees process.stdout and process.stderr into `into` until the returned function is called. */
function teeProcessOutput(into: Capture): () => void {
  const restore: Array<() => void> = []
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write
    stream.write = function (this: typeof stream, chunk: unknown, ...rest: unknown[]) {
      into.text += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString()
      return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest)
    } as typeof stream.write
    restore.push(() => {
      stream.write = original
    })
  }
  return () => {
    for (const r of restore) r()
  }
}

function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    // A refused or cut request is part of the run; its outcome is not what this test checks.
    req.on('error', () => resolve({ status: 0, body: '' }))
    req.end(options.body)
  })
}

t.test('no secret in any log or audit line of a full mesh run', async (t) => {
  const logs = new Capture()
  const auditOut = new Capture()
  const processOut = new Capture()
  const dir = t.testdir()
  const auditFile = join(dir, 'server-audit.log')
  const logger = createLogger({ level: 'debug', stream: logs })
  t.teardown(teeProcessOutput(processOut))
  const mesh = await startMesh(t, {
    logger,
    auditStdout: auditOut,
    // The server's audit log to a small rotated file, the agent's to (captured) stdout.
    serverYaml: `audit: { output: file, path: "${auditFile}", maxBytes: 4096, maxFiles: 50 }\nlimits: { maxHeaderBytes: 4096 }`,
  })

  // The identity material in play: the SVID private key and a JWT-SVID from the same Workload API.
  const client = new WorkloadApiClient({ address: mesh.api.endpoint })
  t.teardown(() => client.close())
  const context = await client.fetchX509Context()
  const keyPems = context.svids.map((s) => s.toPem().key)
  const jwt = (await client.fetchJwtSvid({ audience: 'mcp', spiffeId: AGENT })).token

  const secretHeaders = {
    authorization: `Bearer ${BEARER}`,
    'x-api-key': API_KEY,
    cookie: `session=${COOKIE}; theme=dark`,
  }
  t.test('the traffic suite', async (t) => trafficSuite(t, mesh))

  t.test('requests that carry every kind of secret', async (t) => {
    const url = mesh.outboundUrl
    const ok = await send(`${url}/echo`, {
      method: 'POST',
      headers: secretHeaders,
      body: `{"secret":"${BODY}"}`,
    })
    t.equal(ok.status, 200)
    t.ok(ok.body.includes(BODY), 'the body crossed the mesh')
    await send(`${url}/echo`, { headers: { authorization: `Bearer ${jwt}` } })
    await send(`${url}/search?q=x&access_token=${QUERY}`, { headers: secretHeaders })
    // Failures log more than successes: an upstream that cuts its response, a head over the server's limit.
    await send(`${url}/crash`, { headers: secretHeaders })
    await send(`${url}/echo`, { headers: { ...secretHeaders, 'x-padding': `${BEARER} `.repeat(200) } })
    await send(`${url}/nope`, { method: 'BREW', headers: secretHeaders })
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`, { headers: secretHeaders })
    await once(ws, 'open')
    ws.send(`ws ${BODY}`)
    await once(ws, 'message')
    ws.close()
    await once(ws, 'close')
    const seen = mesh.app.seen.map((r) => r.rawHeaders.join('\n')).join('\n')
    t.ok(
      seen.includes(BEARER) && seen.includes(API_KEY) && seen.includes(COOKIE),
      'the app got the credentials',
    )
  })

  t.test('policy decisions as the policy stage reports them, quoting what a request carried', async (t) => {
    // Until the pipeline's policy stage publishes for these requests, decisions are published here the way it does.
    const base = {
      time: new Date(),
      action: 'http.route',
      mode: 'enforce' as const,
      engine: 'builtin',
      latencyMs: 0.004,
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    }
    const events: PolicyDecisionEvent[] = [
      {
        ...base,
        listener: 'egress',
        direction: 'outbound',
        subject: AGENT,
        peer: MCP,
        resource: describeResource({
          kind: 'http.route',
          method: 'GET',
          path: `/search?access_token=${QUERY}`,
        }),
        decision: 'allow',
        ruleId: 'search',
        reason: 'rule search allows GET /search',
      },
      {
        ...base,
        listener: 'public',
        direction: 'inbound',
        subject: AGENT,
        resource: `GET /search?q=x&access_token=${QUERY}`,
        decision: 'deny',
        ruleId: 'no-bearer',
        reason: `condition of rule no-bearer failed: headers.authorization == "Bearer ${BEARER}" (${jwt})`,
      },
    ]
    for (let i = 0; i < 100; i++) for (const e of events) publishPolicyDecision(e)
    t.pass('published')
  })

  t.test('the scan', async (t) => {
    await mesh.agentSidecar.close()
    await mesh.serverSidecar.close()
    const files = readdirSync(dir).filter((f) => f.startsWith('server-audit.log'))
    const auditText = files.map((f) => readFileSync(join(dir, f), 'utf8')).join('')
    t.ok(files.length > 1, 'the audit file rotated')
    t.equal(
      auditText.split('\n').filter((l) => l.includes('"decision":"deny"')).length,
      100,
      'server audit lines',
    )
    t.equal(
      auditOut.text.split('\n').filter((l) => l.includes('"decision":"allow"')).length,
      100,
      'agent audit lines',
    )
    t.ok(logs.text.includes('"msg":"request"'), 'request logs at debug were captured')
    t.ok(logs.text.includes('upstream exchange failed'), 'the upstream failure was logged')
    const everything = [logs.text, auditOut.text, auditText, processOut.text].join('\n')
    const secrets: Array<[string, string]> = [
      ['Authorization bearer', BEARER],
      ['x-api-key', API_KEY],
      ['cookie', COOKIE],
      ['body', BODY],
      ['query token', QUERY],
      ['JWT-SVID', jwt],
      ['JWT-SVID signature', jwt.split('.')[2] ?? jwt],
    ]
    for (const pem of keyPems) {
      secrets.push(['private key PEM', pem])
      const body = pem.split('\n').filter((l) => l !== '' && !l.startsWith('-----'))
      secrets.push(['private key base64', body.join('')])
      for (const line of body.filter((l) => l.length >= 32))
        secrets.push(['a line of the private key PEM', line])
    }
    for (const [what, secret] of secrets) t.notOk(everything.includes(secret), `no ${what} in the output`)
  })
})

t.test('no provider key in any log, audit line, metric or response of an LLM gateway run', async (t) => {
  const auditOut = new Capture()
  const processOut = new Capture()
  t.teardown(teeProcessOutput(processOut))
  const s = await startLlmSidecar(t, { auditStdout: auditOut })
  const agentKey = `sk-${fixture('fixture-agent-llm-key')}`
  const openai = new OpenAI({ baseURL: `${s.outbound}/v1`, apiKey: agentKey, maxRetries: 0 })
  const anthropic = new Anthropic({ baseURL: s.outbound, apiKey: agentKey, maxRetries: 0 })
  const responses: string[] = []
  const capture = async (p: Promise<unknown>) => {
    const r = await p.catch((e: unknown) => e)
    responses.push(r instanceof Error ? `${r.message} ${JSON.stringify(r)}` : JSON.stringify(r))
  }
  const chat = (model: string) =>
    openai.chat.completions.create({ model, messages: [{ role: 'user', content: BODY }] })
  await capture(chat('gpt-4o-mini'))
  await capture(
    (async () => {
      let text = ''
      const stream = await openai.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: BODY }],
        stream: true,
      })
      for await (const c of stream) text += c.choices[0]?.delta.content ?? ''
      return text
    })(),
  )
  await capture(chat('gpt-4o'))
  await capture(
    anthropic.messages.create({
      model: 'claude-test-small',
      max_tokens: 2,
      messages: [{ role: 'user', content: BODY }],
    }),
  )
  await capture(
    anthropic.messages.create({
      model: 'claude-test-large',
      max_tokens: 2,
      messages: [{ role: 'user', content: BODY }],
    }),
  )
  await capture(openai.models.list())
  await capture(anthropic.models.list())
  await capture(openai.files.list())
  // A bad key file (kept out of force), then a missing provider key in an error path.
  const rotated = `sk-${fixture('fixture-rotated-llm-key')}`
  writeFileSync(s.openaiKeyFile, `${rotated} with a space`)
  await waitFor(() => s.logs.text.includes('provider key unusable'), 'the refused reload', 10_000, 50)
  await capture(chat('gpt-4o-mini'))
  const metrics = await (await fetch(`${s.admin}/metrics`)).text()
  t.ok(metrics.includes('svidecar_'), 'metrics were read')
  await s.sidecar.close()
  t.ok(auditOut.text.includes('"llm.model"'), 'model decisions were audited')
  const everything = [s.logs.text, auditOut.text, processOut.text, metrics, ...responses].join('\n')
  for (const [what, secret] of [
    ['the OpenAI key', s.keys.openai],
    ['the Anthropic key', s.keys.anthropic],
    ['a refused key file', rotated],
    ["the agent's key", agentKey],
    ['a prompt', BODY],
  ] as const)
    t.notOk(everything.includes(secret), `no ${what} anywhere`)
})
