/**
 * What the usage and budget stages share about one LLM call, on the exchange
 * (stages never import each other): the meter the usage stage put on the
 * response, the usage once the exchange ended, and the budget's settlement.
 */
import type { Exchange } from '../../../pipeline/exchange.ts'
import type { UsageMeter } from './meter.ts'
import type { LlmUsage } from './usage.ts'

export const USAGE_ATTRIBUTE = 'llm.usage'

export interface BudgetOutcome {
  names: string[]
  remaining: Partial<Record<string, number>>
}

export interface UsageState {
  /** The usage stage spliced `include_usage` into the request: the usage chunk is the sidecar's, hidden. */
  hideUsageChunk: boolean
  /** Set when the response head arrived. */
  meter?: UsageMeter
  /** Set when the exchange ended. */
  usage?: LlmUsage
  /** The budget stage's settlement; the usage event waits for it to report what is left. */
  settled?: Promise<BudgetOutcome | undefined>
  budgetRefusal?: { at: 'before' | 'stream'; kind: string; name: string }
}

export function usageStateOf(exchange: Exchange): UsageState | undefined {
  return exchange.attributes[USAGE_ATTRIBUTE] as UsageState | undefined
}
