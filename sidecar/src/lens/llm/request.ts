/**
 * What the lens reads from an LLM request body: the model, the stream flag
 * and the output token limit, and nothing else (every other field passes
 * through as the client wrote it). Each is checked for the type the
 * providers document, so the sidecar never decides on a value the provider
 * would read differently.
 */
import { ANTHROPIC_LIMIT_FIELDS, ANTHROPIC_NEVER_STREAMS } from './anthropic.ts'
import type { LlmApi } from './call.ts'
import { JsonRejected, readJsonObject } from './json.ts'
import { OPENAI_LIMIT_FIELDS, OPENAI_NEVER_STREAMS } from './openai.ts'

export const MAX_MODEL_NAME = 256

export type LlmRequestProblem = JsonRejected['problem'] | 'MODEL_MISSING' | 'MODEL_INVALID' | 'FIELD_INVALID'

export class LlmRequestRejected extends Error {
  readonly problem: LlmRequestProblem
  constructor(problem: LlmRequestProblem, message: string) {
    super(message)
    this.problem = problem
  }
}

export interface LlmRequestFields {
  model: string
  stream: boolean
  maxTokens?: number
}

export function readLlmRequest(api: LlmApi, body: Buffer, maxDepth?: number): LlmRequestFields {
  let doc: Record<string, unknown>
  try {
    doc = readJsonObject(body, maxDepth)
  } catch (err) {
    if (err instanceof JsonRejected) throw new LlmRequestRejected(err.problem, err.message)
    throw err
  }
  const model = doc.model
  if (model === undefined || model === null)
    throw new LlmRequestRejected('MODEL_MISSING', 'the body has no "model" field')
  if (typeof model !== 'string')
    throw new LlmRequestRejected('MODEL_INVALID', `"model" must be a string, not ${typeName(model)}`)
  if (!validModelName(model))
    throw new LlmRequestRejected(
      'MODEL_INVALID',
      `"model" must be 1 to ${MAX_MODEL_NAME} characters without control characters`,
    )
  const stream = doc.stream
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean')
    throw new LlmRequestRejected('FIELD_INVALID', `"stream" must be true or false, not ${typeName(stream)}`)
  const never = OPENAI_NEVER_STREAMS.has(api) || ANTHROPIC_NEVER_STREAMS.has(api)
  let maxTokens: number | undefined
  for (const name of OPENAI_LIMIT_FIELDS[api] ?? ANTHROPIC_LIMIT_FIELDS[api] ?? []) {
    const v = doc[name]
    if (v === undefined || v === null) continue
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      throw new LlmRequestRejected('FIELD_INVALID', `"${name}" must be a whole number of tokens`)
    // Chat takes both names; reserve for the larger, whichever the provider honours.
    maxTokens = maxTokens === undefined ? v : Math.max(maxTokens, v)
  }
  return { model, stream: !never && stream === true, ...(maxTokens === undefined ? {} : { maxTokens }) }
}

/** 1 to MAX_MODEL_NAME characters, none of them a control character. */
export function validModelName(s: string): boolean {
  return s.length > 0 && s.length <= MAX_MODEL_NAME && !hasControl(s)
}

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return true
  }
  return false
}

function typeName(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`
}
