/**
 * Which configured budgets a call falls under. A limit names the subjects it
 * applies to (SPIFFE ID patterns: `*` one segment, `**` any) and optionally
 * the models (globs); every subject that matches gets budgets of its own,
 * keyed by its SPIFFE ID, so `spiffe://example.org/agents/*` with 10 000
 * tokens a minute means 10 000 for each agent. With `perModel`, each model
 * has its own budget as well; without it the listed models share one. A call
 * falls under every limit that matches it, and needs room in all of them.
 */
import { matchPattern, type SpiffeId } from 'workload-api-client'
import type { BudgetKey, BudgetLimits } from './store.ts'

export interface BudgetLimitConfig extends BudgetLimits {
  /** Names the budget in errors, the audit line and its store keys. */
  readonly name: string
  readonly subjects: readonly string[]
  readonly models?: readonly string[]
  readonly perModel: boolean
}

export interface BudgetsConfig {
  /** Output tokens reserved for a call that names no `max_tokens`. */
  readonly defaultMaxTokens: number
  /** Tokens a running stream asks for at a time once it has used its reservation. */
  readonly extendTokens: number
  readonly limits: readonly BudgetLimitConfig[]
  /** Shared budgets; absent, they are counted in this process. */
  readonly redis?: {
    readonly url: string
    readonly keyPrefix: string
    readonly timeoutMs: number
    /** What a call gets while Redis is unreachable: `deny` (503 SVD_BUDGET_UNAVAILABLE) or `allow` (uncounted). */
    readonly onUnavailable: 'deny' | 'allow'
  }
}

interface CompiledLimit {
  readonly config: BudgetLimitConfig
  readonly subjects: ReadonlyArray<(id: SpiffeId) => boolean>
  readonly models: ReadonlyArray<RegExp> | undefined
  readonly limits: BudgetLimits
}

export class BudgetTable {
  readonly #limits: CompiledLimit[]

  constructor(limits: readonly BudgetLimitConfig[]) {
    this.#limits = limits.map((config) => ({
      config,
      subjects: config.subjects.map((p) => matchPattern(p)),
      models: config.models?.map(globRegExp),
      limits: {
        ...(config.tokensPerMinute === undefined ? {} : { tokensPerMinute: config.tokensPerMinute }),
        ...(config.tokensPerDay === undefined ? {} : { tokensPerDay: config.tokensPerDay }),
        ...(config.requestsPerMinute === undefined ? {} : { requestsPerMinute: config.requestsPerMinute }),
      },
    }))
  }

  /** The budgets a call by `subject` to `model` falls under (none: it is not budgeted). */
  keys(subject: SpiffeId, model: string | undefined): BudgetKey[] {
    const out: BudgetKey[] = []
    const id = subject.toString()
    for (const l of this.#limits) {
      if (!l.subjects.some((m) => m(subject))) continue
      if (l.models !== undefined && (model === undefined || !l.models.some((re) => re.test(model)))) continue
      const perModel = l.config.perModel && model !== undefined ? `|${model}` : ''
      out.push({ id: `${l.config.name}|${id}${perModel}`, name: l.config.name, limits: l.limits })
    }
    return out
  }

  /** Model names the config spells out (no glob): bounded, so they may be metric label values. */
  literalModels(): string[] {
    const out = new Set<string>()
    for (const l of this.#limits) for (const m of l.config.models ?? []) if (!m.includes('*')) out.add(m)
    return [...out]
  }
}

/** `*` matches any run of characters; everything else is literal. */
export function globRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*')
  return new RegExp(`^${body}$`)
}
