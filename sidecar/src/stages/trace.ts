/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): a valid
 * `traceparent` from the client is kept as it is; a missing or invalid one
 * is replaced by a new trace (random 16-byte trace id, 8-byte parent id,
 * sampled), which the upstream gets too, so the audit line and the
 * upstream's own traces share one id.
 */
import { randomFillSync } from 'node:crypto'
import type { Stage } from '../pipeline/stage.ts'

// version "00" has exactly four fields; a later version may append more after a "-" (§3.2.4, forward compatibility).
const FORMAT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/

export function validTraceparent(value: string): boolean {
  const m = FORMAT.exec(value)
  if (m === null) return false
  const [, version, traceId, parentId, , rest] = m
  if (version === 'ff') return false
  if (version === '00' && rest !== undefined) return false
  return !/^0+$/.test(traceId as string) && !/^0+$/.test(parentId as string)
}

// Random bytes drawn from the CSPRNG a few kilobytes at a time (as crypto.randomUUID does): two
// randomBytes calls per request cost more than the rest of the pipeline's stages together.
const POOL = Buffer.alloc(4096)
let used = POOL.length

function randomHex(bytes: number): string {
  if (used + bytes > POOL.length) {
    randomFillSync(POOL)
    used = 0
  }
  const hex = POOL.toString('hex', used, used + bytes)
  used += bytes
  return hex
}

export function newTraceparent(): string {
  let traceId = randomHex(16)
  let parentId = randomHex(8)
  // All-zero ids are invalid; 2^-128 and 2^-64, but a valid header costs one comparison.
  if (/^0+$/.test(traceId)) traceId = `${traceId.slice(0, 31)}1`
  if (/^0+$/.test(parentId)) parentId = `${parentId.slice(0, 15)}1`
  return `00-${traceId}-${parentId}-01`
}

export function traceStage(): Stage {
  return {
    name: 'trace',
    onRequest(exchange) {
      const sent = exchange.req.headers.traceparent
      if (typeof sent === 'string' && validTraceparent(sent)) {
        exchange.traceparent = sent
        return undefined
      }
      const created = newTraceparent()
      exchange.traceparent = created
      exchange.headers.set.traceparent = created
      return undefined
    },
  }
}
