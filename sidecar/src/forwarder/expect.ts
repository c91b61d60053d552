/**
 * `Expect` at a proxy (RFC 9110 §10.1.1). Node answers `100 Continue` on
 * its own the moment a request head arrives unless the server listens for
 * `checkContinue`; this module takes that decision away from Node so the
 * sidecar answers 100 only when it is ready to take the body:
 *
 * - a request the sidecar refuses from its head alone (guards, no route,
 *   not ready) gets its final status at once, with no 100; Node then closes
 *   the connection, so a body the client sends anyway is never read as the
 *   next request;
 * - a request it forwards gets the 100 once the upstream connection is open
 *   (for a peer sidecar: mTLS done, SPIFFE ID verified) and the request head
 *   goes out (`forwardHttp`), so an unreachable upstream is a final status
 *   before the client uploads anything.
 *
 * The expectation itself is not forwarded: undici refuses the field (it has
 * no way to wait for a 100), so the upstream sees a request whose body
 * follows at once, and the sidecar speaks for the next hop, as the RFC lets
 * a proxy do when the next hop will not answer 100 itself. An upstream that
 * rejects the body early still ends the exchange with its own final status.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'

const awaiting = new WeakSet<IncomingMessage>()

/**
 * Routes `checkContinue` to the server's `request` handler. Other
 * expectations are refused where every listener refuses early (listener/server.ts).
 */
export function handleExpectations(server: Server): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaiting.add(req)
    server.emit('request', req, res)
  })
}

/** True while the client waits for `100 Continue` before it sends the body. */
export function awaitsContinue(req: IncomingMessage): boolean {
  return awaiting.has(req)
}

/** Sends the 100 once, and only while no final response has started. */
export function sendContinue(req: IncomingMessage, res: ServerResponse): void {
  if (!awaiting.delete(req)) return
  if (res.headersSent || res.destroyed) return
  res.writeContinue()
}
