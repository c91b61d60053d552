/**
 * Sampling is an LLM call the agent makes for the server: on the agent's
 * sidecar it counts against the agent's token budget (`budgets:`, keyed by
 * the agent's SPIFFE ID; a limit with `models` matches the first model hint
 * the server sent). Before a `sampling/createMessage` is delivered, the
 * prompt's estimate plus its `maxTokens` is reserved; a budget with nothing
 * left refuses the request (the server gets the error, the agent never sees
 * it). When the agent POSTs its result, the reservation is settled with the
 * tokens of the prompt and of the answer's text: MCP sampling results carry
 * no token counts, so both are the tokenizer's estimate, reported as such
 * on an `llm.usage` line (api `mcp.sampling`). An answer that never comes is
 * settled as unused when the table is full or the sidecar forgets it.
 */
import type { SpiffeId } from 'workload-api-client'
import type { BudgetTable } from '../../budget/limits.ts'
import type { BudgetStore, Remaining, Reservation } from '../../budget/store.ts'
import { type Direction, publishLlmUsage } from '../../observe/events.ts'
import { estimateText, loadTokenizer } from '../llm/usage/estimate.ts'

export interface SamplingBudget {
  readonly table: BudgetTable
  readonly store: BudgetStore
}

interface Open {
  readonly reservation: Reservation
  readonly names: string[]
  readonly input: number
  readonly model: string | undefined
  readonly started: number
}

/** Who the usage line names. */
export interface SamplingContext {
  readonly listener: string
  readonly direction: Direction
  readonly subject: SpiffeId
  readonly traceparent?: string
}

const MAX_OPEN = 10_000

/** Every string under `text` in a content block (or a list of them), joined. */
function textOf(content: unknown, out: string[] = []): string[] {
  if (Array.isArray(content)) {
    for (const c of content) textOf(c, out)
  } else if (content !== null && typeof content === 'object') {
    const text = (content as Record<string, unknown>).text
    if (typeof text === 'string') out.push(text)
  }
  return out
}

function promptTokens(params: Readonly<Record<string, unknown>> | undefined): number {
  const parts: string[] = []
  if (typeof params?.systemPrompt === 'string') parts.push(params.systemPrompt)
  const messages = params?.messages
  if (Array.isArray(messages)) {
    for (const m of messages) textOf((m as Record<string, unknown> | null)?.content, parts)
  }
  return estimateText(parts.join('\n'))
}

function firstHint(params: Readonly<Record<string, unknown>> | undefined): string | undefined {
  const hints = (params?.modelPreferences as Record<string, unknown> | undefined)?.hints
  if (!Array.isArray(hints)) return undefined
  const name = (hints[0] as Record<string, unknown> | undefined)?.name
  return typeof name === 'string' ? name : undefined
}

export class SamplingMeter {
  readonly #budget: SamplingBudget
  readonly #open = new Map<string, Open>()

  constructor(budget: SamplingBudget) {
    this.#budget = budget
    void loadTokenizer()
  }

  /**
   * Reserves for one sampling request before it is delivered; resolves to why it is refused, or undefined.
   * `key` names the request (subject, session and id) so its answer finds the reservation.
   */
  async admit(
    key: string,
    ctx: SamplingContext,
    params: Readonly<Record<string, unknown>> | undefined,
  ): Promise<string | undefined> {
    const subject = ctx.subject
    const model = firstHint(params)
    const keys = this.#budget.table.keys(subject, model)
    if (keys.length === 0) return undefined
    const input = promptTokens(params)
    const max = params?.maxTokens
    const output = typeof max === 'number' && Number.isSafeInteger(max) && max > 0 ? max : 0
    const r = await this.#budget.store.reserve(keys, input + output, Date.now())
    if (!r.ok) {
      // The refusal is a usage line like an LLM call's, so the audit shows why the server was told no.
      publishLlmUsage({
        time: new Date(),
        listener: ctx.listener,
        direction: ctx.direction,
        subject: subject.toString(),
        api: 'mcp.sampling',
        ...(model === undefined ? {} : { model: model.slice(0, 200) }),
        modelLabel: 'other',
        status: 0,
        inputTokens: 0,
        outputTokens: 0,
        estimated: true,
        durationMs: 0,
        code: 'SVD_BUDGET_EXHAUSTED',
        budgetRefusal: { at: 'before', kind: r.kind, name: r.key.name },
        ...(ctx.traceparent === undefined ? {} : { traceparent: ctx.traceparent }),
      })
      return `the ${r.kind} budget ${r.key.name} of ${subject} is used up; it resets in ${r.retryAfter} s`
    }
    // The same request asked again (an MRTR server asking anew under the same state and key): the earlier
    // reservation is released, not leaked.
    const earlier = this.#open.get(key)
    if (earlier !== undefined) {
      this.#open.delete(key)
      void this.#budget.store.settle(earlier.reservation, 0).catch(() => undefined)
    }
    if (this.#open.size >= MAX_OPEN) {
      const [oldest, open] = this.#open.entries().next().value as [string, Open]
      this.#open.delete(oldest)
      void this.#budget.store.settle(open.reservation, 0).catch(() => undefined)
    }
    this.#open.set(key, {
      reservation: r.reservation,
      names: keys.map((k) => k.name),
      input,
      model,
      started: Date.now(),
    })
    return undefined
  }

  /** The agent answered request `key`: a result is counted (estimated), an error settles as unused. */
  answered(key: string, result: unknown, ctx: SamplingContext): void {
    const open = this.#open.get(key)
    if (open === undefined) return
    this.#open.delete(key)
    const content =
      result !== null && typeof result === 'object' ? (result as Record<string, unknown>).content : undefined
    const output = result === undefined ? 0 : estimateText(textOf(content).join('\n'))
    const input = result === undefined ? 0 : open.input
    const model =
      result !== null &&
      typeof result === 'object' &&
      typeof (result as { model?: unknown }).model === 'string'
        ? ((result as { model: string }).model as string)
        : open.model
    void this.#budget.store.settle(open.reservation, input + output).then(
      (remaining: Remaining) => {
        if (result === undefined) return
        publishLlmUsage({
          time: new Date(),
          listener: ctx.listener,
          direction: ctx.direction,
          subject: ctx.subject.toString(),
          api: 'mcp.sampling',
          ...(model === undefined ? {} : { model: model.slice(0, 200) }),
          modelLabel: 'other',
          status: 200,
          inputTokens: input,
          outputTokens: output,
          estimated: true,
          estimateReason: 'MCP sampling results carry no token counts',
          durationMs: Date.now() - open.started,
          budget: { names: open.names, remaining },
          ...(ctx.traceparent === undefined ? {} : { traceparent: ctx.traceparent }),
        })
      },
      () => undefined,
    )
  }
}
