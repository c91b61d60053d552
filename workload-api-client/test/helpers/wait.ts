/** Polls `condition` until it holds or the deadline passes; tests never sleep for synchronisation. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await condition()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/** A backoff that retries quickly and counts its waits, so tests see retries without waiting seconds. */
export function fastBackoff(ms = 20): { next(): number; reset(): void; waits: number; resets: number } {
  return {
    waits: 0,
    resets: 0,
    next() {
      this.waits++
      return ms
    },
    reset() {
      this.resets++
    },
  }
}
