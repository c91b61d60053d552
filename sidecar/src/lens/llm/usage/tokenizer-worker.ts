/**
 * The tokenizer's thread. gpt-tokenizer's tables are ~17 MB of small objects
 * on a V8 heap; on the sidecar's own heap every mark-compact had to trace
 * them, which doubled those pauses (bench/RESULTS.md, issue 10). Here they
 * sit on a heap of their own that hardly allocates. The thread does nothing
 * but count: it blocks on the shared state between calls.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { type CountTokens, countText } from './bpe-count.ts'
import { channelOf, DONE, FAILED, REQUEST, STATE, TEXTS } from './tokenizer-channel.ts'

const { control, counts, data } = channelOf((workerData as { buffer: SharedArrayBuffer }).buffer)

let count: CountTokens
try {
  count = (await import('gpt-tokenizer')).countTokens
} catch (err) {
  parentPort?.postMessage({ ready: false, error: err instanceof Error ? err.message : String(err) })
  process.exit(0)
}
parentPort?.postMessage({ ready: true })

for (;;) {
  const state = Atomics.load(control, STATE)
  if (state !== REQUEST) {
    Atomics.wait(control, STATE, state)
    continue
  }
  let result = DONE
  try {
    const n = Atomics.load(control, TEXTS)
    let at = 0
    for (let i = 0; i < n; i++) {
      const bytes = data.readUInt32LE(at)
      counts[i] = countText(count, data.toString('utf8', at + 4, at + 4 + bytes))
      at += 4 + bytes
    }
  } catch {
    result = FAILED
  }
  Atomics.store(control, STATE, result)
  Atomics.notify(control, STATE)
}
