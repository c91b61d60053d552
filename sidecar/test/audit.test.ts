// The audit log: line shape, redaction, rotation by size, back-pressure and write failures.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import t from 'tap'
import { type ConfigError, parseConfig } from '../src/config/index.ts'
import { createAuditLog } from '../src/observe/audit.ts'
import { RotatingFile } from '../src/observe/audit-file.ts'
import { StreamSink } from '../src/observe/audit-sink.ts'
import { type PolicyDecisionEvent, publishPolicyDecision } from '../src/observe/events.ts'
import { createLogger, redactString } from '../src/observe/log.ts'

const AGENT = 'spiffe://example.org/agent'
const MCP = 'spiffe://example.org/mcp'
const TRACE = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'

type Overrides = { [K in keyof PolicyDecisionEvent]?: PolicyDecisionEvent[K] | undefined }

/** A decision as the policy stage publishes it; an override of `undefined` leaves the field out. */
function decision(over: Overrides = {}): PolicyDecisionEvent {
  const e: Record<string, unknown> = {
    time: new Date('2026-11-30T01:02:03.456Z'),
    listener: 'public',
    direction: 'inbound',
    subject: AGENT,
    action: 'http.route',
    resource: 'GET /tools/list',
    decision: 'allow',
    ruleId: 'agents-list-tools',
    reason: 'rule agents-list-tools allows GET /tools/list',
    mode: 'enforce',
    engine: 'builtin',
    latencyMs: 0.0042,
    traceparent: TRACE,
    ...over,
  }
  for (const [k, v] of Object.entries(e)) if (v === undefined) delete e[k]
  return e as unknown as PolicyDecisionEvent
}

function capture(): { stream: PassThrough; lines: () => Record<string, unknown>[]; text: () => string } {
  const stream = new PassThrough()
  let text = ''
  stream.setEncoding('utf8')
  stream.on('data', (d: string) => {
    text += d
  })
  return {
    stream,
    text: () => text,
    lines: () =>
      text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  }
}

const silent = createLogger({ level: 'error', stream: { write: () => true } })
const STDOUT = { output: 'stdout' as const, maxBytes: 1 << 20, maxFiles: 2 }

t.test('one line per decision: allow, deny, and a denial audit mode let through', async (t) => {
  const out = capture()
  const audit = createAuditLog(STDOUT, { logger: silent, stdout: out.stream })
  t.teardown(audit.subscribe())
  publishPolicyDecision(decision())
  publishPolicyDecision(
    decision({
      direction: 'outbound',
      listener: 'egress',
      peer: MCP,
      resource: 'POST /admin',
      decision: 'deny',
      ruleId: 'no-admin',
      reason: 'rule no-admin denies POST /admin',
    }),
  )
  publishPolicyDecision(
    decision({
      action: 'mcp.tool',
      resource: 'delete_repo',
      decision: 'allow',
      wouldDeny: true,
      mode: 'audit',
      ruleId: undefined,
      reason: 'no rule allows mcp.tool delete_repo (default deny)',
      engine: 'cedar',
      latencyMs: 0.0123456,
    }),
  )
  await audit.close()
  const text = out.text()
  t.equal(text.split('\n').length, 4, 'three lines, each ending in a newline')
  const [allow, deny, audited] = out.lines()
  t.same(Object.keys(allow ?? {}), [
    'time',
    'direction',
    'listener',
    'subject',
    'action',
    'resource',
    'decision',
    'rule',
    'reason',
    'mode',
    'engine',
    'latencyMs',
    'traceparent',
  ])
  t.same(allow, {
    time: '2026-11-30T01:02:03.456Z',
    direction: 'inbound',
    listener: 'public',
    subject: AGENT,
    action: 'http.route',
    resource: 'GET /tools/list',
    decision: 'allow',
    rule: 'agents-list-tools',
    reason: 'rule agents-list-tools allows GET /tools/list',
    mode: 'enforce',
    engine: 'builtin',
    latencyMs: 0.004,
    traceparent: TRACE,
  })
  t.match(allow?.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'RFC 3339 in UTC')
  t.equal(deny?.decision, 'deny')
  t.equal(deny?.peer, MCP)
  t.equal(deny?.rule, 'no-admin')
  t.equal(deny?.direction, 'outbound')
  t.notOk('wouldDeny' in (deny ?? {}), 'wouldDeny only when audit mode let a denial through')
  t.equal(audited?.decision, 'allow')
  t.equal(audited?.wouldDeny, true)
  t.equal(audited?.mode, 'audit')
  t.equal(audited?.engine, 'cedar')
  t.notOk('rule' in (audited ?? {}), 'the default deny names no rule')
  t.equal(audited?.latencyMs, 0.012, 'microsecond resolution')
})

t.test('reasons and resources go through the redaction; a malformed traceparent is left out', async (t) => {
  const out = capture()
  const audit = createAuditLog(STDOUT, { logger: silent, stdout: out.stream })
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmUifQ.c2lnbmF0dXJl'
  audit.record(
    decision({
      decision: 'deny',
      resource: 'GET /search?q=x&access_token=tok-fixture-1&page=2',
      reason: `condition of rule r1 failed: no such overload: "Bearer tok-fixture-2" == ${jwt} (sk-fixture-3333333)`,
      traceparent: 'Bearer tok-fixture-4',
    }),
  )
  await audit.close()
  const text = out.text()
  for (const secret of ['tok-fixture-1', 'tok-fixture-2', 'tok-fixture-4', jwt, 'sk-fixture-3333333'])
    t.notOk(text.includes(secret), `${secret.slice(0, 9)}… is not in the line`)
  const [line] = out.lines()
  t.equal(line?.resource, 'GET /search?q=x&access_token=[redacted]&page=2')
  t.match(line?.reason, /^condition of rule r1 failed: no such overload: "\[redacted\]" == \[redacted\]/)
  t.notOk('traceparent' in (line ?? {}), 'a value that is not a traceparent is not copied')
})

// An MCP resource is named by its URI as the client wrote it (resources/read), and URIs carry credentials in
// their userinfo (RFC 3986 3.2.1, deprecated but alive: postgres://user:password@host); an engine's reason can
// quote an HTTP Basic credential (RFC 7617) as readily as a bearer one.
t.test('a password in a URI and a Basic credential never reach the line', async (t) => {
  const out = capture()
  const audit = createAuditLog(STDOUT, { logger: silent, stdout: out.stream })
  audit.record(
    decision({
      action: 'mcp.resource',
      decision: 'deny',
      resource: 'postgres://reporting:pw-fixture-1@db.internal:5432/sales',
      reason:
        'no rule allows https://bot:pw-fixture-2@git.example/repo.git; header was Basic Ym90OnB3LWZpeHR1cmUtMw==',
    }),
  )
  await audit.close()
  const text = out.text()
  for (const secret of ['pw-fixture-1', 'pw-fixture-2', 'Ym90OnB3LWZpeHR1cmUtMw=='])
    t.notOk(text.includes(secret), `${secret.slice(0, 10)}… is not in the line`)
  const [line] = out.lines()
  t.equal(line?.resource, 'postgres://reporting:[redacted]@db.internal:5432/sales', 'the user and host stay')
  t.match(line?.reason, /https:\/\/bot:\[redacted\]@git\.example\/repo\.git; header was \[redacted\]$/)
})

// Redaction runs on the event loop over text a client chose (a path, a tool name, a URI, a body an engine
// quoted), before the line is clipped. Patterns that backtrack turn a few KB of the right characters into
// seconds or hours of a stalled sidecar (8 KB of `;key` took 24 s). Not a speed figure: linear work takes
// milliseconds here, the quadratic and cubic shapes minutes and more, and the bound sits far from both.
t.test('redaction stays linear on hostile text', async (t) => {
  const n = 256 * 1024
  const hostile: [string, string][] = [
    ['parameter names', `GET /a${';key'.repeat(n / 4)}`],
    ['separators', `GET /a${';'.repeat(n)}`],
    ['JWT starts', 'eyJ-'.repeat(n / 4)],
    ['URI schemes', 'a.'.repeat(n / 2)],
    ['userinfo', '://a:'.repeat(n / 5)],
  ]
  for (const [name, text] of hostile) {
    const started = process.hrtime.bigint()
    redactString(text)
    const ms = Number(process.hrtime.bigint() - started) / 1e6
    t.ok(ms < 2000, `${name}: ${text.length} characters in ${ms.toFixed(1)} ms`)
  }
  // Still what it redacts.
  t.equal(redactString('x-eyJa.b.c ?sig=1&a=2'), 'x-[redacted] ?sig=[redacted]&a=2')
})

// OAuth 2.0's implicit grant returns the token in the fragment (RFC 6749 4.2.2: `#access_token=…`), and an MCP
// resource URI or a reason can quote such a URL.
t.test('a token in a URI fragment is redacted like one in the query', async (t) => {
  t.equal(
    redactString('https://agent.example/cb#access_token=tok-fixture-5&token_type=bearer&state=s1'),
    'https://agent.example/cb#access_token=[redacted]&token_type=[redacted]&state=s1',
  )
})

t.test('a long reason is clipped: one decision stays one modest line', async (t) => {
  const out = capture()
  const audit = createAuditLog(STDOUT, { logger: silent, stdout: out.stream })
  audit.record(decision({ reason: 'r'.repeat(100_000), resource: `GET /${'p'.repeat(100_000)}` }))
  await audit.close()
  const [line] = out.lines()
  t.equal(line?.reason, `${'r'.repeat(2048)}…`)
  t.equal(String(line?.resource).length, 2049)
})

// A clip in the middle of a surrogate pair leaves half a character: JSON.stringify writes it as a lone \ud83d
// escape, which strict readers refuse and others turn into U+FFFD. The line must stay well-formed Unicode.
t.test('a clip never splits a character', async (t) => {
  const out = capture()
  const audit = createAuditLog(STDOUT, { logger: silent, stdout: out.stream })
  const emoji = '\u{1F600}'
  audit.record(
    decision({
      action: 'mcp.tool',
      resource: `${'t'.repeat(2047)}${emoji.repeat(10)}`,
      reason: 'x'.repeat(2047) + emoji,
    }),
  )
  await audit.close()
  const text = out.text()
  t.notMatch(text, /\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])/i, 'no lone surrogate escape in the line')
  const [line] = out.lines()
  t.ok(String(line?.resource).isWellFormed(), 'the resource is well-formed')
  t.ok(String(line?.reason).isWellFormed(), 'the reason is well-formed')
  t.ok(String(line?.resource).startsWith('t'.repeat(2047)))

  const lone = capture()
  const again = createAuditLog(STDOUT, { logger: silent, stdout: lone.stream })
  again.record(decision({ action: 'mcp.tool', resource: 'get\ud83d_weather' }))
  await again.close()
  t.equal(lone.lines()[0]?.resource, 'get\ufffd_weather', 'a lone surrogate from a client is replaced')
})

t.test('an event that breaks the contract is counted as lost, never thrown at the publisher', async (t) => {
  const out = capture()
  let lost = 0
  const audit = createAuditLog(STDOUT, { logger: silent, stdout: out.stream, onLost: (n) => (lost += n) })
  t.teardown(audit.subscribe())
  publishPolicyDecision(decision({ time: new Date(Number.NaN) }))
  publishPolicyDecision(decision())
  await audit.close()
  t.equal(lost, 1)
  t.equal(out.lines().length, 1, 'the next decision is written')
  // diagnostics_channel rethrows a subscriber's error on the next tick: give it that tick.
  await new Promise((resolve) => setImmediate(resolve))
})

t.test(
  'Node fact: a diagnostics_channel subscriber that throws ends the process (hence no throw from record)',
  async (t) => {
    const script = `
    const dc = require('node:diagnostics_channel')
    dc.subscribe('fact', () => { throw new Error('subscriber failed') })
    dc.channel('fact').publish({})
    console.log('publish returned')`
    let status = 0
    let stdout = ''
    try {
      stdout = execFileSync(process.execPath, ['-e', script], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      })
    } catch (err) {
      status = (err as { status: number }).status
      stdout = (err as { stdout: string }).stdout
    }
    t.equal(stdout.trim(), 'publish returned', 'publish itself does not throw')
    t.equal(status, 1, 'but the error is rethrown as an uncaught exception')
  },
)

t.test('lines still queued when the process exits at once reach stdout, in order', async (t) => {
  // Lines are made and written on a later turn (audit.ts, audit-sink.ts); a process.exit() in the same turn
  // must not lose them. A child process, so its real stdout (a pipe) and its own exit are what is tested.
  const audit = new URL('../src/observe/audit.ts', import.meta.url).href
  const log = new URL('../src/observe/log.ts', import.meta.url).href
  const script = `
    const { createAuditLog } = await import(${JSON.stringify(audit)})
    const { createLogger } = await import(${JSON.stringify(log)})
    const logger = createLogger({ level: 'error', stream: { write: () => true } })
    const audit = createAuditLog({ output: 'stdout', maxBytes: 1 << 20, maxFiles: 2 }, { logger })
    for (let n = 0; n < 3; n++)
      audit.record({ time: new Date(0), listener: 'l', direction: 'inbound', subject: 'spiffe://x/' + n,
        action: 'http.route', resource: 'GET /', decision: 'allow', reason: 'r', mode: 'enforce',
        engine: 'builtin', wouldDeny: false, latencyMs: 0, traceparent: '' })
    process.exit(0)`
  const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const subjects = stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { subject: string }).subject)
  t.same(subjects, ['spiffe://x/0', 'spiffe://x/1', 'spiffe://x/2'])
})

t.test('a subscription scoped to one sidecar writes only its listeners’ decisions', async (t) => {
  const out = capture()
  const audit = createAuditLog(STDOUT, { logger: silent, stdout: out.stream })
  const off = audit.subscribe((e) => e.direction === 'inbound' && e.listener === 'public')
  publishPolicyDecision(decision())
  publishPolicyDecision(decision({ listener: 'other' }))
  publishPolicyDecision(decision({ direction: 'outbound' }))
  off()
  publishPolicyDecision(decision())
  await audit.close()
  t.equal(out.lines().length, 1)
})

function numbered(i: number): string {
  return `${JSON.stringify({ n: i, pad: 'x'.repeat(60 + (i % 7)) })}\n`
}

function readRotated(dir: string, name: string): { files: string[]; sizes: number[]; numbers: number[] } {
  const files = readdirSync(dir)
    .filter((f) => f === name || f.startsWith(`${name}.`))
    .sort((a, b) => Number(b.slice(name.length + 1) || 0) - Number(a.slice(name.length + 1) || 0))
  const numbers: number[] = []
  const sizes: number[] = []
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8')
    sizes.push(Buffer.byteLength(text))
    if (text !== '' && !text.endsWith('\n')) throw new Error(`${f} ends mid-line`)
    for (const line of text.split('\n').filter((l) => l !== ''))
      numbers.push((JSON.parse(line) as { n: number }).n)
  }
  return { files, sizes, numbers }
}

t.test('the file rotates by size: N old files, no line split, nothing reordered', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'audit.log')
  let lost = 0
  const file = new RotatingFile({ path, maxBytes: 1000, maxFiles: 3, onLost: (n) => (lost += n) })
  for (let i = 0; i < 200; i++) file.write(numbered(i))
  await file.flush()
  // More after a pause: a second burst goes through the same rotation.
  for (let i = 200; i < 260; i++) file.write(numbered(i))
  await file.close()
  t.equal(lost, 0)
  const { files, sizes, numbers } = readRotated(dir, 'audit.log')
  t.same(
    files,
    ['audit.log.3', 'audit.log.2', 'audit.log.1', 'audit.log'],
    'three old files and the current one',
  )
  for (const [k, size] of sizes.entries()) t.ok(size <= 1000, `${files[k]}: ${size} bytes, within maxBytes`)
  t.ok((sizes[0] ?? 0) > 1000 - 80, 'a rotated file was filled until the next line would not fit')
  t.equal(numbers.at(-1), 259, 'the newest line is in audit.log')
  t.same(
    numbers,
    numbers.map((_, k) => (numbers[0] ?? 0) + k),
    'oldest to newest, contiguous: whole lines, none lost or reordered',
  )
})

t.test('a line longer than maxBytes gets a file of its own; maxFiles 0 keeps no old file', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'audit.log')
  const file = new RotatingFile({ path, maxBytes: 100, maxFiles: 0, onLost: () => t.fail('lost') })
  file.write('{"short":1}\n')
  const long = `${JSON.stringify({ long: 'y'.repeat(300) })}\n`
  file.write(long)
  await file.flush()
  t.same(readdirSync(dir), ['audit.log'])
  t.equal(readFileSync(path, 'utf8'), long, 'the long line whole, alone')
  file.write('{"short":2}\n')
  await file.close()
  t.equal(readFileSync(path, 'utf8'), '{"short":2}\n')
})

t.test('an existing file is appended to, and its size counts toward the next rotation', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'audit.log')
  writeFileSync(path, `${'{"old":true}\n'.repeat(75)}`) // 975 bytes
  const file = new RotatingFile({ path, maxBytes: 1000, maxFiles: 2, onLost: () => t.fail('lost') })
  file.write(numbered(0))
  await file.close()
  t.equal(readFileSync(`${path}.1`, 'utf8'), '{"old":true}\n'.repeat(75), 'the old content rotated whole')
  t.equal(readFileSync(path, 'utf8'), numbered(0))
})

t.test('an unwritable path: lines are counted as lost, logged once, the process carries on', async (t) => {
  const dir = t.testdir()
  mkdirSync(join(dir, 'is-a-directory'))
  for (const path of [join(dir, 'missing', 'audit.log'), join(dir, 'is-a-directory')]) {
    let lost = 0
    let logged = ''
    const logger = createLogger({ level: 'info', stream: { write: (l: string) => (logged += l) } })
    const audit = createAuditLog(
      { output: 'file', path, maxBytes: 4096, maxFiles: 2 },
      { logger, onLost: (n) => (lost += n) },
    )
    const off = audit.subscribe()
    for (let i = 0; i < 5; i++) publishPolicyDecision(decision())
    await audit.flush()
    for (let i = 0; i < 3; i++) publishPolicyDecision(decision())
    await audit.close()
    off()
    t.equal(lost, 8, `${path}: every line counted`)
    const lines = logged.split('\n').filter((l) => l !== '')
    t.equal(lines.length, 1, 'logged once')
    const record = JSON.parse(lines[0] ?? '{}') as { level?: string; error?: { code?: string } }
    t.equal(record.level, 'error')
    t.match(record.error?.code, /^E(NOENT|ISDIR)$/, 'with the cause')
  }
})

t.test(
  'stdout back-pressure: lines wait in a bounded queue, overflow is counted, order is kept',
  async (t) => {
    const received: string[] = []
    let release: (() => void) | undefined
    // A reader that takes one chunk and then holds the next until released.
    const slow = new Writable({
      highWaterMark: 64,
      write(chunk: Buffer, _enc, done) {
        received.push(chunk.toString())
        if (release === undefined) release = done
        else done()
      },
    })
    let lost = 0
    const sink = new StreamSink(slow, (n) => (lost += n), 1000)
    const lines = Array.from({ length: 40 }, (_, i) => numbered(i))
    for (const line of lines) sink.write(line)
    const flushed = sink.flush()
    let done = false
    void flushed.then(() => (done = true))
    await new Promise((resolve) => setImmediate(resolve))
    t.notOk(done, 'flush waits for the reader')
    t.ok(lost > 0, 'what did not fit in 1000 bytes was dropped')
    release?.()
    await flushed
    await sink.close()
    const text = received.join('')
    const got = text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as { n: number }).n)
    t.equal(got.length + lost, 40, 'every line written or counted')
    t.same(
      got,
      got.map((_, k) => k),
      'the first lines, in order, whole',
    )
  },
)

t.test('a stream that fails (EPIPE) is reported, never thrown', async (t) => {
  let lost = 0
  const broken = new Writable({
    write(_chunk, _enc, done) {
      done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))
    },
  })
  const sink = new StreamSink(broken, (n) => (lost += n))
  sink.write(numbered(0))
  await new Promise((resolve) => broken.once('error', resolve))
  sink.write(numbered(1))
  await sink.close()
  t.equal(lost, 1, 'the line after the failure; the failed one was already with the stream')
})

const LISTENER = `inbound:
  - name: public
    address: "127.0.0.1:15443"
    forwardTo: "http://127.0.0.1:8080"
    authorize: { any: true }
`

function configIssues(yaml: string): { path: string; line?: number }[] {
  try {
    parseConfig(LISTENER + yaml, 'audit.yaml', {})
  } catch (err) {
    return (err as ConfigError).issues.map((i) => ({
      path: i.path,
      ...(i.line === undefined ? {} : { line: i.line }),
    }))
  }
  return []
}

t.test('the audit config: defaults, a file needs a path, bounds', async (t) => {
  const defaults = parseConfig(LISTENER, 'audit.yaml', {})
  t.same(defaults.audit, { output: 'stdout', maxBytes: 100 * 1024 * 1024, maxFiles: 5 })
  t.same(defaults.metrics, { policyRuleLabel: false })
  const file = parseConfig(
    `${LISTENER}audit: { output: file, path: /var/log/svidecar/audit.log, maxBytes: 4096, maxFiles: 0 }\nmetrics: { policyRuleLabel: true }\n`,
    'audit.yaml',
    {},
  )
  t.same(file.audit, { output: 'file', path: '/var/log/svidecar/audit.log', maxBytes: 4096, maxFiles: 0 })
  t.same(file.metrics, { policyRuleLabel: true })
  t.same(configIssues('audit: { output: file }\n'), [{ path: 'audit.path', line: 6 }])
  t.same(configIssues('audit: { path: /tmp/a.log }\n'), [{ path: 'audit.path', line: 6 }])
  t.same(
    configIssues('audit: { output: syslog, maxBytes: 10, maxFiles: -1, rotate: daily }\n').map((i) => i.path),
    ['audit.rotate', 'audit.output', 'audit.maxBytes', 'audit.maxFiles'],
  )
  t.same(configIssues('metrics: { policyRuleLabel: "yes" }\n'), [
    { path: 'metrics.policyRuleLabel', line: 6 },
  ])
})
