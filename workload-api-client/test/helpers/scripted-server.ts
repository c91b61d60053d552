/**
 * A Workload API server that plays a script, for the client behaviours real
 * servers will not produce on demand: malformed messages, empty mandatory
 * fields, INVALID_ARGUMENT on a stream, clean ends of stream. It speaks the
 * real gRPC protocol through the same service definition; only its
 * behaviour is scripted. Everything SPIRE or the dev server can do is
 * tested against them instead.
 */
import { join } from 'node:path'
import {
  type Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js'
import { SECURITY_HEADER_KEY, WORKLOAD_API_SERVICE } from 'workload-api-client/wire'

export type StreamEnd = 'ok' | 'hang' | { code: number; details: string }

export interface StreamStep<M> {
  messages: M[]
  end: StreamEnd
}

export class ScriptedServer {
  readonly socketPath: string
  readonly #server = new Server()
  readonly #scripts = new Map<string, StreamStep<unknown>[]>()
  /** Metadata of every call, by method, in arrival order. */
  readonly calls = new Map<string, Metadata[]>()
  readonly #open = new Set<ServerWritableStream<unknown, unknown>>()

  private constructor(dir: string) {
    this.socketPath = join(dir, 'scripted.sock')
  }

  static async start(dir: string): Promise<ScriptedServer> {
    const s = new ScriptedServer(dir)
    const stream = (method: string) => (call: ServerWritableStream<unknown, unknown>) => s.#play(method, call)
    const unimplemented =
      (method: string) => (call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => {
        s.#record(method, call.metadata)
        cb({ code: status.UNIMPLEMENTED, details: 'not scripted' })
      }
    s.#server.addService(WORKLOAD_API_SERVICE, {
      FetchX509SVID: stream('FetchX509SVID'),
      FetchX509Bundles: stream('FetchX509Bundles'),
      FetchJWTBundles: stream('FetchJWTBundles'),
      FetchWITSVID: stream('FetchWITSVID'),
      FetchWITBundles: stream('FetchWITBundles'),
      FetchJWTSVID: unimplemented('FetchJWTSVID'),
      ValidateJWTSVID: unimplemented('ValidateJWTSVID'),
    })
    await new Promise<void>((resolve, reject) =>
      s.#server.bindAsync(`unix:${s.socketPath}`, ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    )
    return s
  }

  get endpoint(): string {
    return `unix://${this.socketPath}`
  }

  /** Queues the behaviour of the next calls of `method`; the last step repeats. */
  script<M>(method: string, ...steps: StreamStep<M>[]): void {
    this.#scripts.set(method, steps as StreamStep<unknown>[])
  }

  callCount(method: string): number {
    return this.calls.get(method)?.length ?? 0
  }

  /** The security header values each call carried. */
  headerValues(method: string): string[][] {
    return (this.calls.get(method) ?? []).map((md) => md.get(SECURITY_HEADER_KEY).map(String))
  }

  #play(method: string, call: ServerWritableStream<unknown, unknown>): void {
    this.#record(method, call.metadata)
    const steps = this.#scripts.get(method) ?? [{ messages: [], end: 'hang' as const }]
    const step = (steps.length > 1 ? steps.shift() : steps[0]) as StreamStep<unknown>
    for (const m of step.messages) call.write(m)
    if (step.end === 'ok') call.end()
    else if (step.end === 'hang') {
      this.#open.add(call)
      call.on('cancelled', () => this.#open.delete(call))
    } else call.emit('error', step.end)
  }

  #record(method: string, metadata: Metadata): void {
    const seen = this.calls.get(method) ?? []
    seen.push(metadata)
    this.calls.set(method, seen)
  }

  /** Ends every hanging stream with status OK, as a server restarting cleanly would. */
  endOpenStreams(): void {
    for (const call of this.#open) call.end()
    this.#open.clear()
  }

  async close(): Promise<void> {
    this.#server.forceShutdown()
  }
}
