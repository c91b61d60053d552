/**
 * Token counts from the tokenizer's worker (tokenizer-worker.ts), asked and
 * answered synchronously: the sidecar's callers count in the middle of a
 * stream's bookkeeping, where an answer later would be an answer too late,
 * and the count takes what it took on this thread before. Many texts go in
 * one call. A worker that fails to start, fails a call or does not answer
 * within a bound is given up: every later count is the caller's stand-in.
 */
import { Worker } from 'node:worker_threads'
import {
  channelBuffer,
  channelOf,
  DATA_BYTES,
  DONE,
  IDLE,
  MAX_TEXTS,
  REQUEST,
  STATE,
  TEXTS,
} from './tokenizer-channel.ts'

// Far above any count's time (the estimate caps a text at 256 Ki characters: tens of milliseconds), far below a
// stall anyone would accept.
const ANSWER_TIMEOUT_MS = 2000

export interface TokenCounter {
  /** Each text's tokens, in order; undefined once the worker is gone (or for a text too large to send). */
  count(texts: readonly string[]): number[] | undefined
}

/** Starts the worker; resolves once it has its tables, or with undefined when it cannot. */
export function startTokenCounter(): Promise<TokenCounter | undefined> {
  const buffer = channelBuffer()
  const { control, counts, data } = channelOf(buffer)
  const entry = new URL(
    import.meta.url.endsWith('.ts') ? './tokenizer-worker.ts' : './tokenizer-worker.js',
    import.meta.url,
  )
  let worker: Worker
  try {
    worker = new Worker(entry, { workerData: { buffer }, stdout: false, stderr: false })
  } catch {
    return Promise.resolve(undefined)
  }
  // The worker never keeps the process alive.
  worker.unref()
  let gone = false
  const giveUp = () => {
    gone = true
    void worker.terminate()
  }
  const counter: TokenCounter = {
    count(texts) {
      if (gone) return undefined
      const out = new Array<number>(texts.length)
      let next = 0
      while (next < texts.length) {
        const first = next
        let at = 0
        while (next < texts.length && next - first < MAX_TEXTS) {
          const text = texts[next] as string
          // UTF-8 takes at most 3 bytes per UTF-16 unit: measured exactly only when that bound does not fit.
          if (at + 4 + 3 * text.length > DATA_BYTES && at + 4 + Buffer.byteLength(text) > DATA_BYTES) {
            if (next === first) return undefined
            break
          }
          const bytes = data.write(text, at + 4, 'utf8')
          data.writeUInt32LE(bytes, at)
          at += 4 + bytes
          next++
        }
        Atomics.store(control, TEXTS, next - first)
        Atomics.store(control, STATE, REQUEST)
        Atomics.notify(control, STATE)
        Atomics.wait(control, STATE, REQUEST, ANSWER_TIMEOUT_MS)
        if (Atomics.load(control, STATE) !== DONE) {
          giveUp()
          return undefined
        }
        for (let i = first; i < next; i++) out[i] = counts[i - first] as number
        Atomics.store(control, STATE, IDLE)
      }
      return out
    },
  }
  return new Promise((resolve) => {
    worker.once('message', (m: { ready?: boolean }) => {
      if (m.ready === true) resolve(counter)
      else {
        giveUp()
        resolve(undefined)
      }
    })
    worker.once('error', () => {
      gone = true
      resolve(undefined)
    })
    worker.once('exit', () => {
      gone = true
      resolve(undefined)
    })
  })
}
