/**
 * gRPC status → SpiffeError, and the reaction the Workload API spec asks
 * for (SPIFFE_Workload_Endpoint.md §6, App. A; go-spiffe handleWatchError):
 * INVALID_ARGUMENT is terminal, CANCELLED means we stopped, and everything
 * else (including a clean end of stream) is retried with backoff.
 */
import { status as GrpcStatus } from '@grpc/grpc-js'
import { SpiffeError, type SpiffeErrorCode } from './errors.ts'

export type WatchReaction = 'stop' | 'fatal' | 'retry'

const STATUS_NAMES = new Map<number, string>(
  Object.entries(GrpcStatus)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v as number, k]),
)

export function grpcStatusName(code: number): string {
  return STATUS_NAMES.get(code) ?? `STATUS_${code}`
}

function codeFor(status: number): SpiffeErrorCode {
  switch (status) {
    case GrpcStatus.UNAVAILABLE:
      return 'SPIFFE_WLAPI_UNAVAILABLE'
    case GrpcStatus.PERMISSION_DENIED:
      return 'SPIFFE_WLAPI_NO_IDENTITY'
    case GrpcStatus.INVALID_ARGUMENT:
      return 'SPIFFE_WLAPI_INVALID_ARGUMENT'
    case GrpcStatus.UNIMPLEMENTED:
      return 'SPIFFE_WLAPI_UNIMPLEMENTED'
    case GrpcStatus.CANCELLED:
      return 'SPIFFE_WLAPI_CLOSED'
    case GrpcStatus.DEADLINE_EXCEEDED:
      return 'SPIFFE_WLAPI_TIMEOUT'
    default:
      return 'SPIFFE_WLAPI_RPC_FAILED'
  }
}

/** Wraps a grpc-js error (an Error with `code` and `details`); the reason is the status name. */
export function fromGrpcError(err: unknown, rpc: string): SpiffeError {
  if (err instanceof SpiffeError) return err
  const e = err as { code?: unknown; details?: unknown; message?: unknown }
  const status = typeof e?.code === 'number' ? e.code : GrpcStatus.UNKNOWN
  const raw = typeof e?.details === 'string' && e.details !== '' ? e.details : String(e?.message ?? err)
  const details = withoutResolutionNote(raw)
  return new SpiffeError(codeFor(status), `${rpc}: ${grpcStatusName(status)}: ${details}`, {
    reason: grpcStatusName(status),
    cause: err,
  })
}

/**
 * grpc-js appends its name resolver's note to connection failures ("No
 * connection established. Last error: connect ENOENT /run/agent.sock.
 * Resolution note: "), usually empty and about DNS even for a unix socket.
 * The last error is what a reader needs; the note is dropped.
 */
export function withoutResolutionNote(details: string): string {
  const at = details.indexOf('. Resolution note:')
  return at === -1 ? details : details.slice(0, at)
}

/** What a watch does after its stream failed with `err`. */
export function watchReaction(err: SpiffeError, closed: boolean): WatchReaction {
  if (closed) return 'stop'
  if (err.code === 'SPIFFE_WLAPI_INVALID_ARGUMENT') return 'fatal'
  // UNIMPLEMENTED means this server will never serve the RPC (WL API §7): do not retry.
  if (err.code === 'SPIFFE_WLAPI_UNIMPLEMENTED') return 'fatal'
  return 'retry'
}
