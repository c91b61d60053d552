// 1,000 streams through a real sidecar, aborted at random points (before the request is sent, mid-stream at a
// random byte, or read to the end), some of them refused or cut once the budget runs out: afterwards the budget
// balances. Nothing stays reserved, what is used equals the sum the usage events report, nothing is negative.
import t, { type Test } from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import type { MemoryBudgetStore } from '../../src/budget/memory.ts'
import { windowsAt } from '../../src/budget/store.ts'
import { type LlmUsageEvent, on } from '../../src/observe/events.ts'
import { AGENT, startDevApi, startGateway } from '../helpers/llm-gateway.ts'
import { startLlmUpstream } from '../helpers/llm-upstream.ts'

function usageEvents(t: Test): LlmUsageEvent[] {
  const seen: LlmUsageEvent[] = []
  t.teardown(on('llmUsage', (e) => seen.push(e)))
  return seen
}

const MESSAGES = [{ role: 'user' as const, content: 'Say many words.' }]

t.test('1,000 streams aborted at random points leave the budget balanced', async (t) => {
  const limit = 15_000
  const upstream = await startLlmUpstream({ tokens: 20, intervalMs: 1 })
  t.teardown(() => upstream.close())
  const gw = await startGateway(
    t,
    await startDevApi(t),
    upstream.url,
    `
budgets:
  defaultMaxTokens: 4
  extendTokens: 1
  limits:
    - name: agent-tokens
      subjects: ["${AGENT}"]
      tokensPerDay: ${limit}
`,
  )
  const events = usageEvents(t)
  const body = JSON.stringify({ model: 'gpt-4o', messages: MESSAGES, stream: true })
  let seed = 42
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
    return seed / 2_147_483_648
  }
  const one = async () => {
    const ctl = new AbortController()
    const mode = random()
    const stopAfter = Math.floor(random() * 4000)
    try {
      if (mode < 0.1) setTimeout(() => ctl.abort(), Math.floor(random() * 3))
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
        signal: ctl.signal,
      })
      if (res.body === null) return
      let read = 0
      for await (const chunk of res.body) {
        read += (chunk as Uint8Array).length
        // Most are cut at a random byte; a few read to the end.
        if (mode < 0.9 && read >= stopAfter) {
          ctl.abort()
          break
        }
      }
    } catch {
      // Aborted: that is the point.
    }
  }
  const total = 1000
  let next = 0
  await Promise.all(
    Array.from({ length: 40 }, async () => {
      while (next < total) {
        next++
        await one()
      }
    }),
  )
  await waitFor(() => upstream.openStreams === 0, 'every upstream stream closed', 30_000)
  const store = gw.sidecar.budgetStore as MemoryBudgetStore
  const key = { id: `agent-tokens|${AGENT}`, name: 'agent-tokens', limits: { tokensPerDay: limit } }
  const counters = () => store.counters(key, windowsAt(Date.now())).day
  const used = () => events.reduce((sum, e) => sum + e.inputTokens + e.outputTokens, 0)
  // A request aborted before the sidecar read it has no exchange and no event: wait for the ledger to settle
  // instead of counting requests. A leaked reservation never returns to 0, and the wait then fails.
  await waitFor(
    () => counters().reserved === 0 && counters().used === used(),
    'reserved back to 0 and used equal to the usage events',
    30_000,
  )
  t.equal(counters().reserved, 0, 'no reservation leaked')
  t.equal(counters().used, used(), 'used equals the sum of the usage events')
  // A cut lands after the event that crossed the line: the overshoot is a few tokens, never a stream's worth.
  t.ok(counters().used <= limit + 100, `used ${counters().used} of ${limit}: at most a few tokens over`)
  t.ok(events.length > 900, `${events.length} calls reached the budget`)
  t.ok(
    events.every((e) => e.budget === undefined || (e.budget.remaining.tokensPerDay ?? 0) >= 0),
    'what is left is never negative',
  )
  const refusals = events.filter((e) => e.budgetRefusal !== undefined).length
  t.ok(
    events.some((e) => e.estimated),
    'some calls were estimated (aborted)',
  )
  t.ok(refusals > 0, 'the budget ran out on the way')
  t.ok(
    events.some((e) => e.budgetRefusal?.at === 'stream'),
    'some streams were cut',
  )
  t.comment(`used ${used()} of ${limit}; ${refusals} refused or cut`)
})
