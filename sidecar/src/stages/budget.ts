/**
 * Token and request budgets for LLM calls, keyed by the subject's SPIFFE ID
 * (budget/limits.ts), behind the LLM lens and the usage stage.
 *
 * Before forwarding it reserves an estimate (the body's bytes / 4 for the
 * input, `max_tokens` or `defaultMaxTokens` for the output), capped at what is
 * left; a budget with nothing left refuses the call with 429
 * SVD_BUDGET_EXHAUSTED and `retry-after` (when its window resets). While a
 * stream runs, the tokens seen so far are compared with the reservation after
 * every chunk; past it, the stage asks the store for more, and when none is
 * left the stream is ended with the API's own error event and the upstream
 * request is closed. No chunk ever waits for the store: the check runs beside
 * the stream. When the exchange ends, however it ends, the reservation is
 * settled with the usage the meter saw (exact or estimated), after any
 * extension still in flight, so nothing leaks.
 */
import type { BudgetsConfig, BudgetTable } from '../budget/limits.ts'
import type { BudgetStore, Remaining, Reservation } from '../budget/store.ts'
import { SvidecarError } from '../errors/index.ts'
import { afterDispatch } from '../forwarder/after-dispatch.ts'
import { llmCallOf } from '../lens/llm/call.ts'
import { estimateInput, inputTokensAtMost, quickInputEstimate } from '../lens/llm/usage/estimate.ts'
import { usageStateOf } from '../lens/llm/usage/state.ts'
import { terminalFrame } from '../lens/llm/usage/terminal.ts'
import { totalTokens } from '../lens/llm/usage/usage.ts'
import type { Logger } from '../observe/log.ts'
import type { Stage, StageResult } from '../pipeline/stage.ts'

export interface BudgetStageOptions {
  table: BudgetTable
  store: BudgetStore
  config: Pick<BudgetsConfig, 'defaultMaxTokens' | 'extendTokens'> & {
    onUnavailable?: 'deny' | 'allow'
  }
  logger?: Logger
}

const RESERVATION = 'llm.budget'
const NO_OUTPUT = new Set(['openai.embeddings', 'anthropic.count_tokens'])

interface Held {
  reservation: Reservation
  names: string[]
  remaining: Remaining
  /** An extension in flight: settling waits for it, and no second one starts. */
  pending: Promise<unknown> | undefined
  ended: boolean
  /** The tokenizer's estimate of the prompt, once a stream's check needed it (or was sure to). */
  inputEstimate?: number
  /** An upper bound of that estimate (inputTokensAtMost), for checks that need no more. */
  inputAtMost: number
}

export function budgetStage(options: BudgetStageOptions): Stage {
  const { table, store, config, logger } = options
  const failOpen = config.onUnavailable === 'allow'
  let warned = false
  const unavailable = (err: unknown, what: string): void => {
    if (warned) return
    warned = true
    logger?.warn(
      `budget store unavailable (${what}); ${failOpen ? 'calls go on uncounted' : 'calls are refused'}`,
      {
        code: 'SVD_BUDGET_UNAVAILABLE',
        error: err instanceof SvidecarError && err.cause instanceof Error ? err.cause.message : String(err),
      },
    )
  }
  return {
    name: 'llm-budget',
    onRequest(exchange) {
      const call = llmCallOf(exchange.attributes)
      const subject = exchange.subject
      if (call === undefined || call.model === undefined || subject === undefined) return undefined
      if (call.api === 'openai.models' || call.api === 'anthropic.models') return undefined
      const keys = table.keys(subject, call.model)
      if (keys.length === 0) return undefined
      const state = usageStateOf(exchange)
      const input = quickInputEstimate(exchange.body)
      // The lens passes the client's number as it came; only a positive integer is a limit worth reserving for.
      const asked = call.maxTokens
      const output = NO_OUTPUT.has(call.api)
        ? 0
        : asked !== undefined && Number.isSafeInteger(asked) && asked > 0
          ? asked
          : config.defaultMaxTokens
      return store.reserve(keys, input + output, Date.now()).then(
        (result): StageResult => {
          if (!result.ok) {
            if (state !== undefined)
              state.budgetRefusal = { at: 'before', kind: result.kind, name: result.key.name }
            return new SvidecarError(
              'SVD_BUDGET_EXHAUSTED',
              // The budget's name stays in the audit line, as a policy rule's does.
              `the ${describe(result.kind)} budget of ${subject} is used up; it resets in ${result.retryAfter} s`,
              { reason: result.kind, retryAfter: result.retryAfter },
            )
          }
          warned = false
          const held: Held = {
            reservation: result.reservation,
            names: keys.map((k) => k.name),
            remaining: result.remaining,
            pending: undefined,
            ended: false,
            inputAtMost: inputTokensAtMost(exchange.body),
          }
          exchange.attributes[RESERVATION] = held
          // A stream whose prompt may hold more tokens than the reservation will need the tokenizer's estimate at
          // its first check, unless the provider reports the input first (Anthropic's message_start): made now,
          // while the provider works, not when the first event is on its way to the client.
          if (call.stream && call.api !== 'anthropic.messages' && held.inputAtMost > held.reservation.tokens)
            afterDispatch(() => {
              if (!held.ended) held.inputEstimate ??= estimateInput(exchange.body)
            })
          exchange.onEnd(() => {
            held.ended = true
            const usage = state?.usage
            const used = usage === undefined ? 0 : totalTokens(usage)
            const settled = (held.pending ?? Promise.resolve())
              .then(() => store.settle(held.reservation, used))
              .then(
                (remaining) => ({ names: held.names, remaining }),
                (err: unknown) => {
                  unavailable(err, 'settle')
                  return undefined
                },
              )
            if (state !== undefined) state.settled = settled
          })
          return undefined
        },
        (err: unknown): StageResult => {
          unavailable(err, 'reserve')
          if (failOpen) return undefined
          return err instanceof SvidecarError
            ? err
            : new SvidecarError('SVD_BUDGET_UNAVAILABLE', 'the budget store cannot be reached', {
                cause: err,
              })
        },
      )
    },
    wrapResponse(exchange, head) {
      const held = exchange.attributes[RESERVATION] as Held | undefined
      const state = usageStateOf(exchange)
      const call = llmCallOf(exchange.attributes)
      if (held === undefined || state === undefined || call === undefined || head.status >= 400)
        return undefined
      const cut = (err: SvidecarError, kind: string) => {
        state.budgetRefusal = { at: 'stream', kind, name: held.names[0] ?? '' }
        head.cut?.(terminalFrame(call.api, err, state.meter?.nextSequence), err)
      }
      const check = () => {
        const meter = state.meter
        if (meter === undefined || !meter.streaming || held.ended || held.pending !== undefined) return
        // A complete answer is not cut: its tokens are spent, and an error now would only lose it.
        if (meter.answered) return
        // Until the provider says, the input counts as the tokenizer's estimate: the figure the call will settle
        // with if the stream ends early, so a cut and the settlement agree. The tokenizer is asked only when upper
        // bounds of both figures (their bytes) could pass the reservation; below that the answer is the same.
        const inputAtMost = meter.inputKnown ? 0 : (held.inputEstimate ?? held.inputAtMost)
        if (meter.tokensSoFarAtMost + inputAtMost <= held.reservation.tokens) return
        if (!meter.inputKnown) held.inputEstimate ??= estimateInput(exchange.body)
        const running = meter.tokensSoFar + (meter.inputKnown ? 0 : (held.inputEstimate ?? 0))
        const over = running - held.reservation.tokens
        if (over <= 0) return
        held.pending = store.extend(held.reservation, Math.max(over, config.extendTokens)).then(
          (granted) => {
            held.pending = undefined
            if (held.ended || state.meter?.answered === true) return
            if (granted >= over) {
              // The stream may have run on while the store answered.
              check()
              return
            }
            cut(
              new SvidecarError(
                'SVD_BUDGET_EXHAUSTED',
                `the token budget of ${exchange.subject} ran out during the stream`,
                { reason: 'STREAM_CUT' },
              ),
              'tokens',
            )
          },
          (err: unknown) => {
            held.pending = undefined
            unavailable(err, 'extend')
            if (held.ended || failOpen) return
            cut(
              err instanceof SvidecarError
                ? err
                : new SvidecarError('SVD_BUDGET_UNAVAILABLE', 'the budget store cannot be reached'),
              'unavailable',
            )
          },
        )
      }
      return {
        data(chunk) {
          // After the usage stage's wrapper (stage order): the meter has seen this chunk.
          check()
          return chunk
        },
      }
    },
  }
}

function describe(kind: string): string {
  return kind === 'tokensPerMinute'
    ? 'tokens-per-minute'
    : kind === 'tokensPerDay'
      ? 'tokens-per-day'
      : 'requests-per-minute'
}
