// The first call a fresh sidecar has to estimate is counted with the tokenizer, like every later one: the sidecar
// loads it before it is ready. Loaded on first use instead, that first estimate came out as characters / 4 (the
// stand-in while the tables load), a different figure for the same prompt. This file must stay the only one in its
// process to load the tokenizer before the sidecar does: nothing here imports it until the call is answered.
import { Writable } from 'node:stream'
import t from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { estimateInput, loadTokenizer } from '../../src/lens/llm/usage/estimate.ts'
import { startLlmSidecar } from '../helpers/llm-sidecar.ts'
import { startLlmUpstream } from '../helpers/llm-upstream.ts'

t.test("a fresh sidecar's first estimated call is the tokenizer's count, not characters / 4", async (t) => {
  // Usage the meter cannot read (counts that are not numbers): the figures are estimated.
  const upstream = await startLlmUpstream({ malformedUsage: true })
  t.teardown(() => upstream.close())
  const lines: string[] = []
  const auditStdout = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean))
      done()
    },
  })
  const gw = await startLlmSidecar(t, { upstreamUrl: upstream.url, auditStdout })
  // A prompt whose token count is far from its characters / 4: 'hello ' is one token, six characters.
  const body = JSON.stringify({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hello '.repeat(400) }],
  })
  const res = await fetch(`${gw.outbound}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-agent-dummy' },
    body,
  })
  t.equal(res.status, 200)
  await res.text()
  await waitFor(() => lines.some((l) => l.includes('"llm.usage"')), 'the llm.usage line')
  const usage = JSON.parse(lines.find((l) => l.includes('"llm.usage"')) as string) as Record<string, unknown>
  t.equal(usage.estimated, true)
  t.equal(usage.estimateReason, 'MALFORMED_USAGE')
  await loadTokenizer()
  const counted = estimateInput(Buffer.from(body))
  t.ok(
    Math.abs(counted - Math.ceil(body.length / 4)) > 100,
    'the two ways of counting differ for this prompt',
  )
  t.equal(usage.tokensIn, counted, "the prompt's tokens as the tokenizer counts them")
})
