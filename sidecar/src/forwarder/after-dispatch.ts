/**
 * Work a request causes but its upstream call does not need (the audit line,
 * the prompt's token estimate) runs after that call has gone out. A plain
 * setImmediate is not enough: undici (8.x, GHSA-35p6-xmwp-9g52) writes a
 * request on a reused keep-alive connection from a setImmediate of its own,
 * queued when the request is dispatched, so that bytes or a FIN already
 * waiting on the idle socket are read first. An immediate queued earlier on
 * the request path (the policy decision's audit line comes before dispatch)
 * runs before that write and holds the request back: 115 µs at the median on
 * the LLM path (bench/RESULTS.md, issue 10). One more hop puts the work on
 * the next turn's check phase, behind every immediate queued in this one.
 */
export function afterDispatch(fn: () => void): void {
  setImmediate(setImmediate, fn)
}
