/**
 * The one watch loop every streaming RPC shares (WL API App. A, go-spiffe
 * `workloadapi/client.go`): open the stream, apply each message, and on any
 * end other than our own cancel or a terminal status, back off and reopen.
 * Every message is the full state, so nothing is lost by reopening.
 */
import type { ClientReadableStream } from '@grpc/grpc-js'
import type { BackoffStrategy } from './backoff.ts'
import { SpiffeError } from './errors.ts'
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

export interface WatchLoopOptions<M, T> {
  rpc: string
  open: () => ClientReadableStream<M>
  parse: (message: M) => T
  watcher: Watcher<T>
  backoff: BackoffStrategy
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
    while (!abort.signal.aborted) {
      let received = false
      let failure: SpiffeError | undefined
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
          // Only a message actually applied proves the server healthy (py-spiffe PR #450).
          opts.backoff.reset()
          opts.watcher.onUpdate(value)
        }
      } catch (err) {
        failure = fromGrpcError(err, opts.rpc)
      } finally {
        current = undefined
      }
      if (abort.signal.aborted) return
      if (failure === undefined) {
        // Clean end of stream (status OK): reopen at once, unless the server
        // keeps closing without sending anything, which would spin.
        if (received) continue
        failure = new SpiffeError('SPIFFE_WLAPI_UNAVAILABLE', `${opts.rpc}: stream ended without a message`, {
          reason: 'EMPTY_STREAM',
        })
      }
      if (watchReaction(failure, abort.signal.aborted) === 'fatal') {
        opts.watcher.onError?.(failure, { fatal: true })
        throw failure
      }
      const delay = opts.backoff.next()
      opts.watcher.onError?.(failure, { fatal: false, retryInMs: delay })
      await sleep(delay, abort.signal)
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
