/**
 * The one watch loop every streaming RPC shares (WL API App. A, go-spiffe
 * `workloadapi/client.go`): open the stream, apply each message, and on any
 * end other than our own cancel or a terminal status, back off and reopen.
 * Every message is the full state, so nothing is lost by reopening.
 *
 * A clean end of stream (status OK) backs off too, as go-spiffe does (its EOF
 * goes through the same `backoff.Next()`): a server that answers one message
 * and ends would otherwise be reopened thousands of times a second. The
 * backoff resets only once a stream has delivered a message and then stayed
 * open for `stableAfterMs`, so a server that keeps ending streams right after
 * their first message is retried ever more slowly.
 */
import type { ClientReadableStream } from '@grpc/grpc-js'
import { SpiffeError } from './errors.ts'
import { type BackoffStrategy, DEFAULT_STREAM_STABLE_MS } from './internal/backoff.ts'
import { fromGrpcError, watchReaction } from './status.ts'

export interface Watcher<T> {
  /** A parsed, valid update. */
  onUpdate(value: T): void
  /**
   * A failure: a malformed message (previous state kept), a failed stream
   * (retried), or, with `fatal`, the end of the watch.
   */
  onError?(err: SpiffeError, info: { fatal: boolean; retryInMs?: number }): void
}

export interface Watch {
  /** Stops the watch and cancels its stream. Idempotent. */
  close(): void
  /** Settles when the watch ends: resolves after close(), rejects with the fatal error otherwise. */
  readonly done: Promise<void>
}

/** Time as a watch sees it; tests replace it to drive backoff without waiting. */
export interface WatchClock {
  now(): number
  /** Resolves after `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>
}

export const SYSTEM_CLOCK: WatchClock = { now: () => performance.now(), sleep }

export interface WatchLoopOptions<M, T> {
  rpc: string
  open: () => ClientReadableStream<M>
  parse: (message: M) => T
  watcher: Watcher<T>
  backoff: BackoffStrategy
  /** How long a stream must stay open after a good message before the backoff resets. */
  stableAfterMs?: number
  clock?: WatchClock
}

export function startWatch<M, T>(opts: WatchLoopOptions<M, T>): Watch {
  const abort = new AbortController()
  let current: ClientReadableStream<M> | undefined
  const done = run()
  // The caller may never await `done`; a fatal end is also reported through onError.
  done.catch(() => {})
  return {
    close() {
      if (abort.signal.aborted) return
      abort.abort()
      current?.cancel()
    },
    done,
  }

  async function run(): Promise<void> {
    const clock = opts.clock ?? SYSTEM_CLOCK
    const stableAfterMs = opts.stableAfterMs ?? DEFAULT_STREAM_STABLE_MS
    while (!abort.signal.aborted) {
      let received = false
      let applied = false
      let failure: SpiffeError | undefined
      const openedAt = clock.now()
      // Only a message actually applied, on a stream that then stayed up, proves the server
      // healthy (py-spiffe PR #450); a reconnect alone, or a stream that ends after one message, does not.
      const resetIfStable = () => {
        if (applied && clock.now() - openedAt >= stableAfterMs) opts.backoff.reset()
      }
      try {
        current = opts.open()
        for await (const message of current as AsyncIterable<M>) {
          if (abort.signal.aborted) break
          received = true
          let value: T
          try {
            value = opts.parse(message as M)
          } catch (err) {
            opts.watcher.onError?.(asSpiffe(err, opts.rpc), { fatal: false })
            continue
          }
          applied = true
          resetIfStable()
          opts.watcher.onUpdate(value)
        }
      } catch (err) {
        failure = fromGrpcError(err, opts.rpc)
      } finally {
        current = undefined
      }
      if (abort.signal.aborted) return
      resetIfStable()
      // A clean end of stream (status OK) is reopened after a backoff step like any other end.
      failure ??= new SpiffeError(
        'SPIFFE_WLAPI_UNAVAILABLE',
        received ? `${opts.rpc}: the server ended the stream` : `${opts.rpc}: stream ended without a message`,
        { reason: received ? 'STREAM_ENDED' : 'EMPTY_STREAM' },
      )
      if (watchReaction(failure, abort.signal.aborted) === 'fatal') {
        opts.watcher.onError?.(failure, { fatal: true })
        throw failure
      }
      const delay = opts.backoff.next()
      opts.watcher.onError?.(failure, { fatal: false, retryInMs: delay })
      await clock.sleep(delay, abort.signal)
    }
  }
}

function asSpiffe(err: unknown, rpc: string): SpiffeError {
  return err instanceof SpiffeError ? err : fromGrpcError(err, rpc)
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
