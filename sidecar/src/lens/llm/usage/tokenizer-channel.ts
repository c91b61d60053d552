/**
 * The memory the sidecar's thread and the tokenizer's worker share, and how
 * it is laid out. One call at a time: the caller writes texts, flips the
 * state to REQUEST and waits on it; the worker counts each text and flips it
 * to DONE (or FAILED).
 *
 *   state, texts            Int32 × 4
 *   counts                  Int32 × MAX_TEXTS
 *   texts                   (u32 LE byte length, UTF-8 bytes) × texts
 */

export const IDLE = 0
export const REQUEST = 1
export const DONE = 2
export const FAILED = 3

export const STATE = 0
export const TEXTS = 1

export const MAX_TEXTS = 4096
// A text is at most the estimate's cap (256 Ki UTF-16 units, so 768 KiB of UTF-8) plus its length.
export const DATA_BYTES = 1024 * 1024 + 4

const CONTROL_BYTES = 16
const COUNTS_BYTES = 4 * MAX_TEXTS

export interface Channel {
  control: Int32Array
  counts: Int32Array
  data: Buffer
}

export function channelBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(CONTROL_BYTES + COUNTS_BYTES + DATA_BYTES)
}

export function channelOf(buffer: SharedArrayBuffer): Channel {
  return {
    control: new Int32Array(buffer, 0, 4),
    counts: new Int32Array(buffer, CONTROL_BYTES, MAX_TEXTS),
    data: Buffer.from(buffer, CONTROL_BYTES + COUNTS_BYTES, DATA_BYTES),
  }
}
