// The budget arithmetic of the in-process store (the Redis scripts implement the same and are driven through
// real sidecars in budget-redis.test.ts): reservations are capped at what is left, a budget with nothing left
// refuses with the time to its reset, extensions and settlements balance, several budgets are all-or-nothing.
import t from 'tap'
import { MemoryBudgetStore } from '../../src/budget/memory.ts'
import { type BudgetKey, secondsUntilReset, windowsAt } from '../../src/budget/store.ts'

const NOW = Date.UTC(2026, 10, 30, 9, 14, 30, 500)
const tokens: BudgetKey = { id: 'a|x', name: 'a', limits: { tokensPerMinute: 100, tokensPerDay: 150 } }
const requests: BudgetKey = { id: 'b|x', name: 'b', limits: { requestsPerMinute: 2 } }

t.test('reserve, extend and settle balance; nothing goes below zero', async (t) => {
  const store = new MemoryBudgetStore()
  const r1 = await store.reserve([tokens], 80, NOW)
  t.ok(r1.ok)
  if (!r1.ok) return
  t.equal(r1.reservation.tokens, 80)
  t.same(r1.remaining, { tokensPerMinute: 20, tokensPerDay: 70 })
  const r2 = await store.reserve([tokens], 80, NOW)
  t.ok(r2.ok && r2.reservation.tokens === 20, 'capped at what is left')
  const r3 = await store.reserve([tokens], 1, NOW)
  t.match(r3, { ok: false, kind: 'tokensPerMinute', retryAfter: 30 }, 'refused until the minute resets')
  t.equal(await store.extend(r1.reservation, 10), 0, 'no room to extend')
  if (!r2.ok) return
  t.same(await store.settle(r2.reservation, 5), { tokensPerMinute: 15, tokensPerDay: 65 })
  t.equal(await store.extend(r1.reservation, 10), 10)
  t.equal(r1.reservation.tokens, 90)
  const left = await store.settle(r1.reservation, 120)
  t.same(left, { tokensPerMinute: 0, tokensPerDay: 25 }, 'an overrun is recorded, what is left stays at 0')
  const c = store.counters(tokens, windowsAt(NOW))
  t.same(c.minute, { used: 125, reserved: 0, requests: 2 })
  t.same(c.day, { used: 125, reserved: 0, requests: 0 })
  const next = await store.reserve([tokens], 50, NOW + 60_000)
  t.ok(next.ok && next.reservation.tokens === 25, 'a new minute, but the day has 25 left')
  const day = await store.reserve([tokens], 1, NOW + 60_000)
  t.match(day, { ok: false, kind: 'tokensPerDay' })
})

t.test('several budgets: all or nothing', async (t) => {
  const store = new MemoryBudgetStore()
  for (let i = 0; i < 2; i++) t.ok((await store.reserve([tokens, requests], 1, NOW)).ok)
  t.match(await store.reserve([tokens, requests], 1, NOW), { ok: false, kind: 'requestsPerMinute' })
  const c = store.counters(tokens, windowsAt(NOW))
  t.same(c.minute.requests, 2, 'the refused call reserved nothing in the other budget')
  t.same(c.minute.reserved, 2)
})

t.test('retry-after counts to the end of the window', async (t) => {
  t.equal(secondsUntilReset('tokensPerMinute', NOW), 30)
  t.equal(secondsUntilReset('requestsPerMinute', Date.UTC(2026, 0, 1, 0, 0, 59, 999)), 1)
  t.equal(secondsUntilReset('tokensPerDay', Date.UTC(2026, 0, 1, 23, 0, 0)), 3600)
})
