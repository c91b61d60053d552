import t from 'tap'
import { SvidecarError } from '../src/errors/svidecar-error.ts'

function thrower(): never {
  throw new SvidecarError('SVD_INTERNAL', 'boom')
}

t.test('a 4xx refusal skips the stack but keeps code, message, cause and fields', async (t) => {
  const cause = new Error('underlying')
  const limit = Error.stackTraceLimit
  const err = new SvidecarError('SVD_POLICY_DENIED', 'not allowed', { cause, reason: 'r', retryAfter: 3 })
  t.equal(Error.stackTraceLimit, limit, 'the global stack limit is restored')
  t.equal(err.code, 'SVD_POLICY_DENIED')
  t.equal(err.status, 403)
  t.equal(err.message, 'not allowed')
  t.equal(err.cause, cause)
  t.equal(err.reason, 'r')
  t.equal(err.retryAfter, 3)
  t.ok(err instanceof Error)
  t.type(err.stack, 'string')
  t.notMatch(err.stack ?? '', /\n\s+at /, 'no frames were captured')
})

t.test('a 5xx failure keeps its stack for the logs', async (t) => {
  let err: unknown
  try {
    thrower()
  } catch (e) {
    err = e
  }
  t.ok(err instanceof SvidecarError)
  t.match((err as Error).stack ?? '', /\n\s+at thrower/)
})
