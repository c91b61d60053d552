/**
 * SPIFFE mTLS for `fetch`: an undici Dispatcher whose connections present
 * the source's current SVID and verify the server's SVID and ID before any
 * request byte is sent.
 *
 * A separate entry point so that the main one never loads undici: undici is
 * an optional peer dependency, needed only by those who import this.
 *
 * @packageDocumentation
 */
import { Agent, type Dispatcher } from 'undici'
import { CallbackHandlerAdapter, isCallbackHandler } from './internal/callback-handler.ts'
import { SpiffeTlsClient, type SpiffeTlsClientOptions } from './tls/client.ts'

/**
 * What spiffeDispatcher takes: `SpiffeTlsClientOptions` of the main entry
 * point (source, authorizer, TLS versions, connect timeout) and undici Agent
 * options.
 */
export interface SpiffeDispatcherOptions extends SpiffeTlsClientOptions {
  /** undici Agent options (pool sizes, timeouts); `connect` is the SPIFFE connector and cannot be set. */
  agent?: Omit<Agent.Options, 'connect'>
}

/**
 * An undici Agent for `fetch(url, { dispatcher })` (Node's global fetch or
 * undici's): every connection is SPIFFE mTLS, rotations are picked up from
 * the next connection on. Use `https://` URLs; the host name is used for
 * SNI only, the server is judged by its SPIFFE ID.
 */
export function spiffeDispatcher(options: SpiffeDispatcherOptions): Agent {
  const client = new SpiffeTlsClient(options)
  return new SpiffeAgent({ ...options.agent, connect: client.connector })
}

// Node's global fetch is its bundled undici (6.x), which dispatches with callback-style handlers that
// undici 8 refuses; those are adapted here, so one dispatcher serves both fetches.
class SpiffeAgent extends Agent {
  override dispatch(options: Agent.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const adapted = isCallbackHandler(handler)
      ? (new CallbackHandlerAdapter(handler) as unknown as Dispatcher.DispatchHandler)
      : handler
    return super.dispatch(options, adapted)
  }
}
