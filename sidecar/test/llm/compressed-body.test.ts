// LLM request bodies sent with a content coding (RFC 9110 §8.4): the lens decodes gzip, deflate, br and zstd
// (several stacked too), decides on the JSON inside and sends the provider those decoded bytes without the
// coding; a body that decodes past the cap is an oversized body, one that does not decode or uses a coding the
// sidecar does not know is refused with its code; nothing refused reaches the provider. Also curl as it
// uploads a compressed request over 1 MB: Expect: 100-continue first.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { brotliCompressSync, deflateSync, gzipSync, zstdCompressSync } from 'node:zlib'
import t from 'tap'
import { startLlmSidecar } from '../helpers/llm-sidecar.ts'

function post(
  url: string,
  body: Buffer,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

function curl(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) =>
    execFile('curl', args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(Object.assign(err, { stderr })) : resolve({ stdout, stderr }),
    ),
  )
}

const ALLOWED = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'

t.test('a compressed body is decoded, decided on and sent on decoded', async (t) => {
  const s = await startLlmSidecar(t)
  const url = `${s.outbound}/v1/chat/completions`
  const plain = Buffer.from(ALLOWED)
  const cases: [string, string, Buffer][] = [
    ['gzip', 'gzip', gzipSync(plain)],
    ['x-gzip', 'x-gzip', gzipSync(plain)],
    ['deflate (zlib)', 'deflate', deflateSync(plain)],
    ['br', 'br', brotliCompressSync(plain)],
    ['zstd', 'zstd', zstdCompressSync(plain)],
    ['gzip then br', 'gzip, br', brotliCompressSync(gzipSync(plain))],
    ['upper case', 'GZIP', gzipSync(plain)],
  ]
  for (const [what, coding, body] of cases) {
    const res = await post(url, body, { 'content-encoding': coding })
    t.equal(res.status, 200, `${what}: ${res.body}`)
    const got = s.upstream.received.at(-1)
    t.equal(
      got?.raw.toString(),
      ALLOWED,
      `${what}: the provider got the decoded bytes as the client wrote them`,
    )
    t.equal(got?.headers['content-encoding'], undefined, `${what}: and no coding`)
    t.equal(got?.headers['content-length'], String(plain.length), `${what}: with their length`)
  }

  // A stream: include_usage is spliced into the decoded body.
  const stream = await post(url, gzipSync('{"model":"gpt-4o-mini","messages":[],"stream":true}'), {
    'content-encoding': 'gzip',
  })
  t.equal(stream.status, 200)
  t.equal(
    s.upstream.received.at(-1)?.raw.toString(),
    '{"model":"gpt-4o-mini","messages":[],"stream":true,"stream_options":{"include_usage":true}}',
  )
  t.notMatch(stream.body, /"choices":\[\]/, 'the usage chunk is hidden again')

  // Anthropic-style, with its error shape.
  const denied = await post(
    `${s.outbound}/v1/messages`,
    gzipSync('{"model":"claude-test-large","max_tokens":1,"messages":[]}'),
    { 'content-encoding': 'gzip', 'anthropic-version': '2023-06-01' },
  )
  t.equal(denied.status, 403, 'a denied model inside gzip is denied')
  t.match(JSON.parse(denied.body), {
    type: 'error',
    error: { type: 'permission_error', details: { error_code: 'SVD_POLICY_DENIED' } },
  })
})

t.test('compressed bodies that cannot be read are refused before anything is forwarded', async (t) => {
  const s = await startLlmSidecar(t, { llm: '  bodyLimit: 65536\n' })
  const url = `${s.outbound}/v1/chat/completions`
  const before = s.upstream.received.length
  // 8 MB of one character compresses to a few KB: decoded, it is far past the 64 KiB the lens reads.
  const bomb = gzipSync(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"${'a'.repeat(8e6)}"}]}`)
  t.ok(bomb.length < 65536)
  const cases: [string, Buffer, string, string, number][] = [
    ['a decompression bomb', bomb, 'gzip', 'SVD_REQUEST_BODY_TOO_LARGE', 413],
    ['not gzip data', Buffer.from(ALLOWED), 'gzip', 'SVD_LLM_REQUEST_INVALID', 400],
    ['truncated gzip', gzipSync(ALLOWED).subarray(0, 20), 'gzip', 'SVD_LLM_REQUEST_INVALID', 400],
    ['an unknown coding', Buffer.from(ALLOWED), 'compress', 'SVD_LLM_REQUEST_INVALID', 400],
    ['too many codings', Buffer.from(ALLOWED), 'gzip, gzip, gzip, gzip', 'SVD_LLM_REQUEST_INVALID', 400],
    ['a denied model', gzipSync('{"model":"gpt-4o","messages":[]}'), 'gzip', 'SVD_POLICY_DENIED', 403],
  ]
  for (const [what, body, coding, code, status] of cases) {
    const res = await post(url, body, { 'content-encoding': coding })
    t.equal(res.status, status, what)
    const parsed = JSON.parse(res.body) as { error: { code: string; message: string } }
    t.equal(parsed.error.code, code, `${what}: ${parsed.error.message}`)
  }
  t.equal(s.upstream.received.length, before, 'nothing was forwarded')
})

t.test('curl uploads a gzip body over 1 MB: 100 Continue, then the call goes through', async (t) => {
  const s = await startLlmSidecar(t)
  const dir = t.testdir()
  // Random text does not compress much: the gzip file stays over curl's 1 MB threshold for Expect.
  const prompt = randomBytes(1_200_000).toString('base64')
  const json = `{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"${prompt}"}]}`
  const file = join(dir, 'body.json.gz')
  writeFileSync(file, gzipSync(json))
  const { stdout, stderr } = await curl([
    '-sS',
    '-v',
    '--data-binary',
    `@${file}`,
    '-H',
    'content-type: application/json',
    '-H',
    'content-encoding: gzip',
    '-H',
    'authorization: Bearer sk-agent-curl',
    `${s.outbound}/v1/chat/completions`,
  ])
  t.match(stderr, /^> Expect: 100-continue/m, 'curl asked for a 100')
  t.match(stderr, /^< HTTP\/1\.1 100 Continue/m, 'and got it')
  t.match(stderr, /^< HTTP\/1\.1 200 OK/m)
  t.equal((JSON.parse(stdout) as { object: string }).object, 'chat.completion')
  const got = s.upstream.received.at(-1)
  t.equal(got?.raw.toString(), json, 'the provider got the decoded JSON')
  t.equal(got?.headers.authorization, `Bearer ${s.keys.openai}`, "with the sidecar's key, not curl's")
})

t.test('curl with a body over the cap: a final 413 at once, no 100, the body never sent', async (t) => {
  const s = await startLlmSidecar(t, { llm: `  bodyLimit: ${1024 * 1024}\n` })
  const file = join(t.testdir(), 'big.json')
  writeFileSync(
    file,
    `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"${'a'.repeat(3_000_000)}"}]}`,
  )
  const { stdout, stderr } = await curl([
    '-sS',
    '-v',
    '--data-binary',
    `@${file}`,
    '-H',
    'content-type: application/json',
    '-H',
    'anthropic-version: 2023-06-01',
    `${s.outbound}/v1/messages`,
  ])
  t.match(stderr, /^> Expect: 100-continue/m, 'curl asked for a 100')
  t.notMatch(stderr, /^< HTTP\/1\.1 100 Continue/m, 'and got none')
  t.match(stderr, /^< HTTP\/1\.1 413 /m)
  t.notMatch(stderr, /Done waiting for 100-continue/, 'curl did not wait for it either')
  t.match(JSON.parse(stdout), {
    type: 'error',
    error: { type: 'request_too_large', details: { error_code: 'SVD_REQUEST_BODY_TOO_LARGE' } },
  })
  t.equal(s.upstream.received.length, 0)
})
